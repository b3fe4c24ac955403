{{/* Base name of the objects: "kube-l2tp" unless nameOverride. */}}
{{- define "kube-l2tp.name" -}}
{{- default "kube-l2tp" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The generated RBAC data (files/rbac.yaml, from lib/api/rbac.ts). */}}
{{- define "kube-l2tp.rbac" -}}
{{- .Files.Get "files/rbac.yaml" -}}
{{- end -}}

{{- define "kube-l2tp.operatorServiceAccount" -}}
{{- (include "kube-l2tp.rbac" . | fromYaml).operator.serviceAccount -}}
{{- end -}}

{{- define "kube-l2tp.agentServiceAccount" -}}
{{- (include "kube-l2tp.rbac" . | fromYaml).agent.serviceAccount -}}
{{- end -}}

{{- define "kube-l2tp.labels" -}}
app.kubernetes.io/name: {{ include "kube-l2tp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kube-l2tp
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "kube-l2tp.operatorSelector" -}}
app.kubernetes.io/name: {{ include "kube-l2tp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* image reference: repository@digest or repository:tag (tag defaults to appVersion) */}}
{{- define "kube-l2tp.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}
