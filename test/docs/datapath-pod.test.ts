// docs/install.md, "Privileges", against the datapath pod the operator renders from the chart's
// default values: the host paths it mounts (where, read-only or not, propagation) and the
// capabilities it asks for.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { podConfigFromEnv } from '../../operator/env-config.js';
import { DEFAULT_POD_CONFIG, desiredDatapathPod } from '../../operator/render.js';
import { codeSpans, readRepo, tables } from './markdown.js';

interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  mountPropagation?: string;
}
interface PodSpec {
  volumes: { name: string; hostPath?: { path: string } }[];
  initContainers?: { volumeMounts: Mount[] }[];
  containers: { volumeMounts: Mount[]; securityContext: { capabilities: { add: string[] } } }[];
}

const values = YAML.parse(readRepo('deploy/helm/kube-l2tp/values.yaml')) as {
  cni: Record<string, string>;
  datapath: Record<string, string>;
};

/** The pod as the chart's default values make it: values -> operator environment -> pod. */
function renderedPod(): PodSpec {
  const env = {
    CNI_BIN_DIR: values.cni.binDir,
    CNI_CONF_DIR: values.cni.confDir,
    CNI_DATA_DIR: values.cni.dataDir,
    NETNS_DIR: values.cni.netnsDir,
    AGENT_SOCKET_DIR: values.cni.socketDir,
    KUBELET_ROOT_DIR: values.datapath.kubeletRootDir,
    DATAPATH_SECCOMP_PROFILE: values.datapath.seccompProfile,
  };
  return desiredDatapathPod('n1', { ...DEFAULT_POD_CONFIG, ...podConfigFromEnv(env) })
    .spec as unknown as PodSpec;
}

const line = (host: string, at: string, ro: boolean, prop: string | undefined) =>
  `${host} -> ${at} ${ro ? 'read-only' : 'read-write'}${prop ? ` ${prop}` : ''}`;

function podMounts(pod: PodSpec): string[] {
  const host = new Map(pod.volumes.map((v) => [v.name, v.hostPath?.path]));
  const all = [...(pod.initContainers ?? []), ...pod.containers].flatMap((c) => c.volumeMounts);
  const out = all
    .filter((m) => host.get(m.name))
    .map((m) => line(host.get(m.name)!, m.mountPath, m.readOnly === true, m.mountPropagation));
  return [...new Set(out)].sort();
}

/** The host path table, with value names (`cni.binDir`, `<datapath.kubeletRootDir>/...`) resolved. */
export function documentedMounts(doc: string): string[] {
  const rows = tables(doc, ['host path', 'mounted at', 'mode']).flat();
  const resolve = (s: string) =>
    s
      .replace(/<([a-zA-Z.]+)>/g, (_, v: string) => resolveValue(v))
      .replace(/^[a-z]+\.[a-zA-Z]+$/, (v) => resolveValue(v));
  const resolveValue = (v: string) => {
    const [group, key] = v.split('.') as ['cni' | 'datapath', string];
    const x = values[group]?.[key];
    if (x === undefined) throw new Error(`${v}: not a value of the chart`);
    return x;
  };
  return rows
    .map(([hostCell = '', atCell = '', mode = '']) => {
      const host = resolve(codeSpans(hostCell)[0] ?? hostCell);
      const at = /the same/.test(atCell) ? host : resolve(codeSpans(atCell)[0] ?? atCell);
      return line(host, at, /read-only/.test(mode), /HostToContainer/.exec(mode)?.[0]);
    })
    .sort();
}

const install = readRepo('docs/install.md');

describe('the datapath pod in docs/install.md', () => {
  it('the host path table is what the pod mounts', () => {
    assert.deepEqual([...new Set(documentedMounts(install))], podMounts(renderedPod()));
  });

  it('the capability table is what the pod asks for', () => {
    const rows = tables(install, ['capability', 'needed for']).flat();
    const documented = rows.map((r) => r[0]!.trim()).sort();
    assert.deepEqual(documented, [...renderedPod().containers[0]!.securityContext.capabilities.add].sort());
  });

  it('catches a host path table that drifted', () => {
    const ro = install.replace(
      '| `cni.binDir` | `/host/cni/bin` | read-write |',
      '| `cni.binDir` | `/host/cni/bin` | read-only |',
    );
    assert.notDeepEqual([...new Set(documentedMounts(ro))], podMounts(renderedPod()));
    const gone = install.replace(/^\| `\/proc\/sys\/net` .*\n/m, '');
    assert.notDeepEqual([...new Set(documentedMounts(gone))], podMounts(renderedPod()));
  });
});
