// Pure builders: what the operator wants to exist, computed from what it has observed. No I/O here,
// so every rule is unit-tested (operator/render.test.ts).
import { caughtUp, reportedSessions } from '../lib/api/node-status.js';
import { LABEL_NODE, nodeLabelValue, shardName } from '../lib/api/node-shards.js';
import { createHash } from 'node:crypto';
import { SECCOMP_LOCALHOST_PROFILE, SECCOMP_PROFILE_DIR } from '../datapath/seccomp/profile.js';
import {
  API_VERSION,
  GROUP,
  namespaceAllowed,
  type L2TPNodeState,
  type L2TPTunnel,
  type NodeSessionSpec,
  type NodeStateSpec,
  type NodeTunnelSpec,
  type Pseudowire,
} from '../lib/api/schemas.js';

export const FINALIZER = `${GROUP}/teardown`;
export const MANAGED_BY = 'kube-l2tp-operator';
export const ANNOTATION_HASH = `${GROUP}/template-hash`;
/** Where IPAM used to be given (free-form); now spec.ipam. Only read to tell its users so. */
export const ANNOTATION_IPAM = `${GROUP}/ipam`;

export interface PodConfig {
  namespace: string;
  image: string;
  imagePullPolicy: 'IfNotPresent' | 'Always' | 'Never';
  serviceAccountName: string;
  logLevel: string;
  backend: 'auto' | 'kernel' | 'ebpf' | 'userspace';
  cniBinDir: string;
  cniConfDir: string;
  netnsDir: string;
  socketDir: string;
  /** Host directory of the CNI attachment records (survive agent restarts). */
  cniStateDir: string;
  /**
   * The node's CNI data directory (host-local keeps its leases in <dir>/networks). Mounted at the
   * same path, so IPAM delegates the agent runs keep their state on the node where they expect it.
   */
  cniDataDir: string;
  healthPort: number;
  /**
   * Where the agent serves /metrics, /healthz and /readyz on the node's network: "127.0.0.1" (the
   * default: only the node itself), "node-ip" (the node's InternalIP, for a Prometheus that scrapes
   * nodes; protect it with a firewall or NetworkPolicy), "0.0.0.0", or an address.
   */
  metricsHost?: string;
  priorityClassName?: string;
  /** Where datapath pods may run (default: every node that has endpoints). */
  nodeSelector?: Record<string, string>;
  /** Default: tolerate everything, so a tainted node with endpoints still gets its datapath. */
  tolerations?: Record<string, unknown>[];
  resources?: Record<string, unknown>;
  imagePullSecrets?: { name: string }[];
  /** MTU policy for sessions without an explicit MTU: the agent derives it from this underlay MTU. */
  underlayMtu?: number;
  /** MTU policy "fixed": every session without an explicit MTU gets this one. */
  fixedMtu?: number;
  /**
   * The agent container's seccomp profile: "Localhost" (the project's profile, datapath/seccomp/,
   * which an init container writes into the kubelet's seccomp directory) or "RuntimeDefault" (the
   * runtime's default, which lets mount, unshare and the rest of the CAP_SYS_ADMIN set through).
   */
  seccompProfile: 'Localhost' | 'RuntimeDefault';
  /** The kubelet's --root-dir on the nodes: Localhost profiles are read from <rootDir>/seccomp/. */
  kubeletRootDir: string;
}

export const DEFAULT_POD_CONFIG: PodConfig = {
  namespace: 'kube-l2tp',
  image: 'ghcr.io/kube-l2tp/kube-l2tp:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  serviceAccountName: 'kube-l2tp-datapath',
  logLevel: 'info',
  backend: 'auto',
  cniBinDir: '/opt/cni/bin',
  cniConfDir: '/etc/cni/net.d',
  netnsDir: '/var/run/netns',
  socketDir: '/run/kube-l2tp',
  cniStateDir: '/var/lib/cni/kube-l2tp',
  cniDataDir: '/var/lib/cni',
  healthPort: 9771,
  seccompProfile: 'Localhost',
  kubeletRootDir: '/var/lib/kubelet',
};

// ---- tunnels and node states -----------------------------------------------------------------------

export interface TunnelSides {
  localNode: string;
  peerNode?: string;
  external: boolean;
}

export function tunnelSides(t: L2TPTunnel): TunnelSides {
  return t.spec.peer.external
    ? { localNode: t.spec.local.node, external: true }
    : {
        localNode: t.spec.local.node,
        ...(t.spec.peer.node ? { peerNode: t.spec.peer.node } : {}),
        external: false,
      };
}

export function tunnelNodes(t: L2TPTunnel): string[] {
  const s = tunnelSides(t);
  return s.peerNode ? [s.localNode, s.peerNode] : [s.localNode];
}

/** The tunnel is allocated and addressed: node states can carry it. */
export function tunnelRenderable(t: L2TPTunnel): boolean {
  const s = t.status;
  if (!s?.tunnelID || !s.peerTunnelID || !s.localAddress || !s.peerAddress) return false;
  if (t.spec.encapsulation === 'UDP' && (!s.udpPort || !s.peerUDPPort)) return false;
  return true;
}

export function pseudowireRenderable(p: Pseudowire): boolean {
  return !p.metadata.deletionTimestamp && !!p.status?.sessionID && !!p.status.peerSessionID;
}

/** Interface name for a session: the kernel-like l2tpethN while it fits 15 bytes, else l2tp<hex>. */
export function ifnameFor(sessionId: number): string {
  const n = `l2tpeth${sessionId}`;
  return n.length <= 15 ? n : `l2tp${sessionId.toString(16)}`;
}

export type CookieLookup = (pw: Pseudowire, which: 'cookie' | 'peerCookie') => string | undefined;

/**
 * The spec of one node's L2TPNodeState. `side` picks the mirror: the local node uses the IDs as
 * recorded; the in-cluster peer node uses them reversed (the kernel doc's Host 1 / Host 2 table),
 * including cookies: the peer sends what the local side expects.
 */
export function renderNodeState(
  node: string,
  tunnels: L2TPTunnel[],
  pseudowires: Pseudowire[],
  cookies: CookieLookup,
): NodeStateSpec {
  const out: NodeTunnelSpec[] = [];
  const byTunnel = new Map<string, Pseudowire[]>();
  for (const p of pseudowires) {
    const l = byTunnel.get(p.spec.tunnelRef.name) ?? [];
    l.push(p);
    byTunnel.set(p.spec.tunnelRef.name, l);
  }
  for (const t of [...tunnels].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    if (t.metadata.deletionTimestamp || !tunnelRenderable(t)) continue;
    const sides = tunnelSides(t);
    const local = sides.localNode === node;
    if (!local && sides.peerNode !== node) continue;
    const s = t.status!;
    const udp = t.spec.encapsulation === 'UDP';
    const tun: NodeTunnelSpec = {
      name: t.metadata.name,
      tunnelId: local ? s.tunnelID! : s.peerTunnelID!,
      peerTunnelId: local ? s.peerTunnelID! : s.tunnelID!,
      encap: udp ? 'udp' : 'ip',
      local: local ? s.localAddress! : s.peerAddress!,
      remote: local ? s.peerAddress! : s.localAddress!,
      ...(udp ? { udpSourcePort: local ? s.udpPort! : s.peerUDPPort! } : {}),
      ...(udp ? { udpDestinationPort: local ? s.peerUDPPort! : s.udpPort! } : {}),
      udpChecksum: t.spec.udpChecksum,
      sessions: [],
    };
    const pws = (byTunnel.get(t.metadata.name) ?? [])
      .filter(
        (p) =>
          pseudowireRenderable(p) && namespaceAllowed(t.spec.allowedNamespaces, p.metadata.namespace ?? ''),
      )
      .sort((a, b) => pwKey(a).localeCompare(pwKey(b)));
    for (const p of pws) {
      const sessionId = local ? p.status!.sessionID! : p.status!.peerSessionID!;
      const peerSessionId = local ? p.status!.peerSessionID! : p.status!.sessionID!;
      const send = cookies(p, local ? 'cookie' : 'peerCookie');
      const expect = cookies(p, local ? 'peerCookie' : 'cookie');
      const seq = p.spec.sequencing;
      const sess: NodeSessionSpec = {
        pseudowire: { namespace: p.metadata.namespace ?? '', name: p.metadata.name },
        sessionId,
        peerSessionId,
        ifname: ifnameFor(sessionId),
        ...(send !== undefined ? { cookie: send } : {}),
        ...(expect !== undefined ? { peerCookie: expect } : {}),
        l2specType: p.spec.l2SpecificSublayer === 'None' ? 'none' : 'default',
        sendSequence: seq?.send ?? false,
        requireSequence: seq?.requireReceive ?? false,
        reorderTimeoutMs: seq?.reorderTimeoutMs ?? 0,
        ...(p.spec.mtu !== undefined ? { mtu: p.spec.mtu } : {}),
        mode: p.spec.attachment.mode === 'Exclusive' ? 'exclusive' : 'bridge',
        ...(p.spec.allowedNamespaces?.length ? { allowedNamespaces: p.spec.allowedNamespaces } : {}),
      };
      tun.sessions.push(sess);
    }
    out.push(tun);
  }
  return { nodeName: node, tunnels: out };
}

export const pwKey = (p: Pseudowire) => `${p.metadata.namespace ?? ''}/${p.metadata.name}`;

/**
 * Shard `shard` of a node's state (lib/api/node-shards.ts). No owner: the operator deletes it once the
 * node's agent has removed what it made (reconcilers/node.ts), which the garbage collector would not
 * wait for.
 */
export function desiredNodeState(node: string, spec: NodeStateSpec, shard = 0): L2TPNodeState {
  return {
    apiVersion: API_VERSION,
    kind: 'L2TPNodeState',
    metadata: {
      name: shardName(node, shard),
      labels: { 'app.kubernetes.io/managed-by': MANAGED_BY, [LABEL_NODE]: nodeLabelValue(node) },
    },
    spec,
  };
}

// ---- datapath pod ------------------------------------------------------------------------------------

export function datapathPodName(node: string): string {
  const base = `kube-l2tp-datapath-${node}`;
  if (base.length <= 63) return base;
  const h = createHash('sha256').update(node).digest('hex').slice(0, 8);
  return `${base.slice(0, 54)}-${h}`;
}

export interface PodObject {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller: boolean;
      blockOwnerDeletion: boolean;
    }[];
    uid?: string;
    resourceVersion?: string;
    deletionTimestamp?: string;
  };
  spec: Record<string, unknown>;
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

/** The datapath pod for one node; `owner` is that node's L2TPNodeState (name + uid). */
export function desiredDatapathPod(
  node: string,
  cfg: PodConfig,
  owner?: { name: string; uid: string },
): PodObject {
  const hostPath = (name: string, path: string, type: string) => ({ name, hostPath: { path, type } });
  // the records' directory needs its own volume only when the data dir's does not hold it
  const dataDir = cfg.cniDataDir.replace(/\/+$/, '');
  const stateInData = cfg.cniStateDir === dataDir || cfg.cniStateDir.startsWith(`${dataDir}/`);
  const metricsHost = cfg.metricsHost ?? '127.0.0.1';
  // the kubelet probes the pod's IP (the node's) unless told a host: loopback when bound there
  const probeHost = metricsHost === '127.0.0.1' ? { host: '127.0.0.1' } : {};
  const localhostSeccomp = cfg.seccompProfile === 'Localhost';
  const seccompHostDir = `${cfg.kubeletRootDir.replace(/\/+$/, '')}/seccomp/${SECCOMP_PROFILE_DIR}`;
  const spec = {
    nodeName: node,
    hostNetwork: true,
    dnsPolicy: 'ClusterFirstWithHostNet',
    serviceAccountName: cfg.serviceAccountName,
    ...(cfg.priorityClassName ? { priorityClassName: cfg.priorityClassName } : {}),
    terminationGracePeriodSeconds: 30,
    tolerations: cfg.tolerations ?? [{ operator: 'Exists' }],
    ...(cfg.nodeSelector && Object.keys(cfg.nodeSelector).length ? { nodeSelector: cfg.nodeSelector } : {}),
    ...(cfg.imagePullSecrets?.length ? { imagePullSecrets: cfg.imagePullSecrets } : {}),
    // The runtime reads a Localhost profile when it creates the agent container, which is after the
    // init containers ran: this one puts the profile there, with nothing but that directory and the
    // runtime's default filter (root only to write a root-owned directory; no capability).
    ...(localhostSeccomp
      ? {
          initContainers: [
            {
              name: 'seccomp-profile',
              image: cfg.image,
              imagePullPolicy: cfg.imagePullPolicy,
              command: ['kube-l2tp-datapath', 'seccomp-profile', '--dir', '/host/seccomp'],
              env: [{ name: 'LOG_LEVEL', value: cfg.logLevel }],
              securityContext: {
                privileged: false,
                runAsUser: 0,
                readOnlyRootFilesystem: true,
                allowPrivilegeEscalation: false,
                seccompProfile: { type: 'RuntimeDefault' },
                capabilities: { drop: ['ALL'] },
              },
              resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
              volumeMounts: [{ name: 'seccomp-profile', mountPath: '/host/seccomp' }],
            },
          ],
        }
      : {}),
    containers: [
      {
        name: 'agent',
        image: cfg.image,
        imagePullPolicy: cfg.imagePullPolicy,
        command: ['kube-l2tp-datapath', 'agent', '--node-name', '$(NODE_NAME)'],
        env: [
          { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'LOG_LEVEL', value: cfg.logLevel },
          { name: 'KUBE_L2TP_BACKEND', value: cfg.backend },
          { name: 'KUBE_L2TP_SOCKET_DIR', value: cfg.socketDir },
          { name: 'KUBE_L2TP_NETNS_DIR', value: cfg.netnsDir },
          { name: 'KUBE_L2TP_CNI_BIN_DIR', value: '/host/cni/bin' },
          { name: 'KUBE_L2TP_CNI_CONF_DIR', value: '/host/cni/net.d' },
          { name: 'KUBE_L2TP_CNI_STATE_DIR', value: cfg.cniStateDir },
          { name: 'KUBE_L2TP_HEALTH_PORT', value: String(cfg.healthPort) },
          ...(metricsHost === 'node-ip'
            ? [
                { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
                { name: 'KUBE_L2TP_METRICS_HOST', value: '$(HOST_IP)' },
              ]
            : [{ name: 'KUBE_L2TP_METRICS_HOST', value: metricsHost }]),
          { name: 'KUBE_L2TP_PROC_SYS_NET', value: '/host/proc/sys/net' },
          // where the agent removes its profile on uninstall
          ...(localhostSeccomp ? [{ name: 'KUBE_L2TP_SECCOMP_DIR', value: '/host/seccomp' }] : []),
          ...(cfg.underlayMtu !== undefined
            ? [{ name: 'KUBE_L2TP_UNDERLAY_MTU', value: String(cfg.underlayMtu) }]
            : []),
          ...(cfg.fixedMtu !== undefined
            ? [{ name: 'KUBE_L2TP_FIXED_MTU', value: String(cfg.fixedMtu) }]
            : []),
        ],
        securityContext: {
          privileged: false,
          runAsUser: 0,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          // the project's profile: the runtime's default list plus setns and bpf, without the mount,
          // unshare, ... that the runtime's default adds for SYS_ADMIN (datapath/seccomp/profile.ts)
          seccompProfile: localhostSeccomp
            ? { type: 'Localhost', localhostProfile: SECCOMP_LOCALHOST_PROFILE }
            : { type: 'RuntimeDefault' },
          capabilities: {
            drop: ['ALL'],
            // NET_ADMIN: links, addresses, generic netlink l2tp; NET_RAW: IP-encap (proto 115) sockets;
            // SYS_ADMIN: setns() into pod network namespaces for the CNI attach; it also covers loading
            // the ebpf backend's programs (CAP_BPF alone is unknown to kernels before 5.8).
            add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'],
          },
        },
        readinessProbe: {
          httpGet: { path: '/readyz', port: cfg.healthPort, ...probeHost },
          periodSeconds: 5,
        },
        livenessProbe: {
          httpGet: { path: '/healthz', port: cfg.healthPort, ...probeHost },
          periodSeconds: 10,
          failureThreshold: 6,
        },
        resources: cfg.resources ?? { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '1Gi' } },
        volumeMounts: [
          // opening a device node for writing needs no writable mount
          { name: 'dev-net-tun', mountPath: '/dev/net/tun', readOnly: true },
          // the ebpf backend pins its programs and maps in the host's bpffs, so they outlive the pod
          { name: 'bpffs', mountPath: '/sys/fs/bpf', mountPropagation: 'HostToContainer' },
          { name: 'netns', mountPath: cfg.netnsDir, mountPropagation: 'HostToContainer', readOnly: true },
          // the node's per-device sysctls (lib/netdev-hardening.ts): the container's /proc/sys is read-only
          { name: 'proc-sys-net', mountPath: '/host/proc/sys/net' },
          { name: 'cni-bin', mountPath: '/host/cni/bin' },
          { name: 'cni-conf', mountPath: '/host/cni/net.d' },
          // and again where IPAM delegates look for their own configuration: whereabouts reads
          // <conf dir>/whereabouts.d/whereabouts.conf and the kubeconfig that file names by its host path
          { name: 'cni-conf', mountPath: cfg.cniConfDir, readOnly: true },
          { name: 'agent-socket', mountPath: cfg.socketDir },
          { name: 'cni-data', mountPath: cfg.cniDataDir },
          ...(stateInData ? [] : [{ name: 'cni-state', mountPath: cfg.cniStateDir }]),
          ...(localhostSeccomp ? [{ name: 'seccomp-profile', mountPath: '/host/seccomp' }] : []),
        ],
      },
    ],
    volumes: [
      hostPath('dev-net-tun', '/dev/net/tun', 'CharDevice'),
      hostPath('bpffs', '/sys/fs/bpf', 'Directory'),
      hostPath('netns', cfg.netnsDir, 'DirectoryOrCreate'),
      hostPath('proc-sys-net', '/proc/sys/net', 'Directory'),
      hostPath('cni-bin', cfg.cniBinDir, 'DirectoryOrCreate'),
      hostPath('cni-conf', cfg.cniConfDir, 'DirectoryOrCreate'),
      hostPath('agent-socket', cfg.socketDir, 'DirectoryOrCreate'),
      hostPath('cni-data', cfg.cniDataDir, 'DirectoryOrCreate'),
      ...(stateInData ? [] : [hostPath('cni-state', cfg.cniStateDir, 'DirectoryOrCreate')]),
      ...(localhostSeccomp ? [hostPath('seccomp-profile', seccompHostDir, 'DirectoryOrCreate')] : []),
    ],
  };
  const hash = createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 10);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: datapathPodName(node),
      namespace: cfg.namespace,
      labels: {
        'app.kubernetes.io/name': 'kube-l2tp-datapath',
        'app.kubernetes.io/component': 'datapath',
        'app.kubernetes.io/managed-by': MANAGED_BY,
        [LABEL_NODE]: nodeLabelValue(node),
      },
      annotations: { [ANNOTATION_HASH]: hash, [`${GROUP}/node-name`]: node },
      ...(owner
        ? {
            ownerReferences: [
              {
                apiVersion: API_VERSION,
                kind: 'L2TPNodeState',
                name: owner.name,
                uid: owner.uid,
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          }
        : {}),
    },
    spec,
  };
}

export const podReady = (p: PodObject) =>
  (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * Rolling replacement, one node at a time: an outdated pod may be deleted only when no pod is
 * terminating and every pod already on the new template is Ready.
 */
export function mayRoll(pods: PodObject[], currentHash: string): boolean {
  for (const p of pods) {
    if (p.metadata.deletionTimestamp) return false;
    if (p.metadata.annotations?.[ANNOTATION_HASH] === currentHash && !podReady(p)) return false;
  }
  return true;
}

// ---- Multus NetworkAttachmentDefinition ------------------------------------------------------------

export function desiredNAD(p: Pseudowire): Record<string, unknown> {
  const config: Record<string, unknown> = {
    cniVersion: '1.0.0',
    type: 'kube-l2tp',
    pseudowire: { namespace: p.metadata.namespace, name: p.metadata.name },
  };
  if (p.spec.mtu !== undefined) config.mtu = p.spec.mtu;
  // from the validated spec only: nothing of the object's free-form metadata reaches the config
  if (p.spec.ipam !== undefined) config.ipam = p.spec.ipam;
  return {
    apiVersion: 'k8s.cni.cncf.io/v1',
    kind: 'NetworkAttachmentDefinition',
    metadata: {
      name: p.metadata.name,
      namespace: p.metadata.namespace,
      labels: { 'app.kubernetes.io/managed-by': MANAGED_BY },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: 'Pseudowire',
          name: p.metadata.name,
          uid: p.metadata.uid!,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: { config: JSON.stringify(config) },
  };
}

// ---- roll-up ------------------------------------------------------------------------------------------

export interface EndpointView {
  node: string;
  sessionID?: number;
  peerSessionID?: number;
  interface?: string;
  state: string;
  mtu?: number;
  message?: string;
}

export interface Rollup {
  endpoints: EndpointView[];
  ready: { status: 'True' | 'False' | 'Unknown'; reason: string; message: string };
  degraded: { status: 'True' | 'False'; reason: string; message: string };
  mtu?: number;
}

/** Roll node states (written by agents) up into a pseudowire's endpoints and conditions. */
export function rollupPseudowire(
  p: Pseudowire,
  t: L2TPTunnel,
  nodeStates: Map<string, L2TPNodeState>,
): Rollup {
  const endpoints: EndpointView[] = [];
  const sides = tunnelSides(t);
  const nodes = sides.peerNode ? [sides.localNode, sides.peerNode] : [sides.localNode];
  const problems: string[] = [];
  let pending = false;
  for (const node of nodes) {
    const local = node === sides.localNode;
    const sessionID = local ? p.status?.sessionID : p.status?.peerSessionID;
    const peerSessionID = local ? p.status?.peerSessionID : p.status?.sessionID;
    const ns = nodeStates.get(node);
    const inSpec = ns?.spec?.tunnels.some((x) =>
      x.sessions.some(
        (s) =>
          s.sessionId === sessionID &&
          s.pseudowire.name === p.metadata.name &&
          s.pseudowire.namespace === p.metadata.namespace,
      ),
    );
    const st = reportedSessions(ns).find(
      (s) =>
        s.pseudowire?.name === p.metadata.name &&
        s.pseudowire.namespace === p.metadata.namespace &&
        s.sessionId === sessionID,
    );
    const seen = caughtUp(ns);
    const e: EndpointView = {
      node,
      ...(sessionID !== undefined ? { sessionID } : {}),
      ...(peerSessionID !== undefined ? { peerSessionID } : {}),
      ...(st?.ifname ? { interface: st.ifname } : {}),
      state: st?.state ?? 'Pending',
      ...(st?.mtu !== undefined ? { mtu: st.mtu } : {}),
      ...(st?.message ? { message: st.message } : {}),
    };
    endpoints.push(e);
    if (!inSpec || !st || !seen) {
      pending = true;
      continue;
    }
    if (st.state === 'Failed' || st.state === 'Down')
      problems.push(`${node}: session ${st.state}${st.message ? `: ${st.message}` : ''}`);
    else if (st.state !== 'Up') pending = true;
  }
  const mtus = [...new Set(endpoints.map((e) => e.mtu).filter((m): m is number => m !== undefined))];
  const mtuMismatch = mtus.length > 1;
  const degraded = problems.length
    ? { status: 'True' as const, reason: 'EndpointDown', message: problems.join('; ') }
    : mtuMismatch
      ? {
          status: 'True' as const,
          reason: 'MTUMismatch',
          message: `endpoint MTUs differ: ${endpoints.map((e) => `${e.node}=${e.mtu ?? '?'}`).join(', ')}`,
        }
      : { status: 'False' as const, reason: 'AsExpected', message: '' };
  const ready = problems.length
    ? { status: 'False' as const, reason: 'EndpointDown', message: problems.join('; ') }
    : pending
      ? {
          status: 'False' as const,
          reason: 'Pending',
          message: 'waiting for the node agents to report the session',
        }
      : {
          status: 'True' as const,
          reason: 'Up',
          message: `session up on ${nodes.join(' and ')}${sides.external ? ' (external peer)' : ''}`,
        };
  const mtu = mtus.length ? Math.min(...mtus) : undefined;
  return { endpoints, ready, degraded, ...(mtu !== undefined ? { mtu } : {}) };
}

export function rollupTunnel(t: L2TPTunnel, nodeStates: Map<string, L2TPNodeState>): Omit<Rollup, 'mtu'> {
  const endpoints: EndpointView[] = [];
  const sides = tunnelSides(t);
  const problems: string[] = [];
  let pending = false;
  for (const node of tunnelNodes(t)) {
    const local = node === sides.localNode;
    const ns = nodeStates.get(node);
    const st = ns?.status?.tunnels?.find((x) => x.name === t.metadata.name);
    const seen = caughtUp(ns);
    const tunnelID = local ? t.status?.tunnelID : t.status?.peerTunnelID;
    endpoints.push({
      node,
      ...(tunnelID !== undefined ? { sessionID: tunnelID } : {}),
      state: st?.state ?? 'Pending',
      ...(st?.message ? { message: st.message } : {}),
    });
    if (!st || !seen) pending = true;
    else if (st.state === 'Failed') problems.push(`${node}: ${st.message ?? 'tunnel failed'}`);
    else if (st.state !== 'Ready') pending = true;
  }
  return {
    endpoints,
    ready: problems.length
      ? { status: 'False', reason: 'EndpointFailed', message: problems.join('; ') }
      : pending
        ? { status: 'False', reason: 'Pending', message: 'waiting for the node agents to report the tunnel' }
        : { status: 'True', reason: 'Up', message: 'tunnel configured on every endpoint' },
    degraded: problems.length
      ? { status: 'True', reason: 'EndpointFailed', message: problems.join('; ') }
      : { status: 'False', reason: 'AsExpected', message: '' },
  };
}
