// The agent's CNI settings from the environment the operator's datapath pod sets (render.ts): host
// directories as mounted into this container. Pure, so the pod -> agent hop is unit-tested.
import { join } from 'node:path';
import { DEFAULT_CNI_SOCKET } from '../../lib/agent-protocol.js';

export interface AgentCniSettings {
  /**
   * The node's CNI bin dir as mounted here: the shim is installed into it, and IPAM delegates are
   * looked for in it before the runtime's CNI_PATH (a host path, which this container sees elsewhere).
   */
  binDir: string;
  confDir: string;
  socket: string;
  /** Attachment records (a node directory: they outlive the agent). */
  stateDir: string;
  /**
   * Where the pod mounts the runtime's network namespaces (the chart's cni.netnsDir, at the same
   * path): named when a pod's namespace cannot be opened. Unknown for an agent run by hand.
   */
  netnsDir?: string;
}

export function agentCniSettings(env: Readonly<Record<string, string | undefined>>): AgentCniSettings {
  const binDir = env.KUBE_L2TP_CNI_BIN_DIR || '/opt/cni/bin';
  return {
    binDir,
    confDir: env.KUBE_L2TP_CNI_CONF_DIR || '/etc/cni/net.d',
    socket: env.KUBE_L2TP_SOCKET_DIR ? join(env.KUBE_L2TP_SOCKET_DIR, 'cni.sock') : DEFAULT_CNI_SOCKET,
    stateDir: env.KUBE_L2TP_CNI_STATE_DIR || '/var/lib/cni/kube-l2tp',
    ...(env.KUBE_L2TP_NETNS_DIR ? { netnsDir: env.KUBE_L2TP_NETNS_DIR } : {}),
  };
}
