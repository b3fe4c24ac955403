/* Generated from lib/cni/versions.ts and lib/agent-protocol.ts by scripts/gen-shim-versions.ts; do not edit. */
#ifndef KUBE_L2TP_SHIM_VERSIONS_H
#define KUBE_L2TP_SHIM_VERSIONS_H
#define SUPPORTED "[\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define SUPPORTED_LIST "0.4.0", "1.0.0", "1.1.0"
#define SUPPORTED_TEXT "0.4.0, 1.0.0, 1.1.0"
#define CURRENT_VERSION "1.1.0"
#define AGENT_SOCKET_DIR "/run/kube-l2tp/"
#define DEFAULT_SOCKET "/run/kube-l2tp/cni.sock"
#define DEFERRED_DEL_DIR "deferred-del"
#endif
