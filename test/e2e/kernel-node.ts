// A "VM node" for the local lab: Debian's kernel under QEMU (test/harness/vm.ts) joined to a running
// LocalLab's underlay, registered as a Node with an InternalIP on that underlay, and able to reach the
// lab's apiserver at the same 127.0.0.1:PORT the lab's kubeconfigs name.
//
//   root netns:  <prefix>-ul (the lab's underlay bridge) --veth-- <prefix>-vmh netns
//   <prefix>-vmh: bridge vmbr0 = { the veth end, the VM's TAP }, address UNDERLAY.250 (the apiserver relay)
//   guest:       eth0 = UNDERLAY.N (the Node's InternalIP), socat 127.0.0.1:PORT -> UNDERLAY.250:PORT
//
// The lab's kubelet stand-in knows only the namespace nodes, so the datapath Pod the operator renders
// for the VM node stays Pending: the guest plays its own kubelet and starts the agent with the Pod's
// command line itself (see agentCommandLine).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { AGENT_SA, DEFAULT_NAMESPACE, serviceAccountUser } from '../../lib/api/rbac.js';
import { runCapture } from '../../lib/exec.js';
import { cnitoolPath } from '../harness/cnitool.js';
import { bridgeLoopbackPort } from '../harness/loopback-bridge.js';
import { ip, ipIn, Lab } from '../harness/netns.js';
import { repoRoot } from '../harness/vm.js';
import type { LocalLab } from './lab.js';

/** Where the guest sees the writable share after chrootPrelude(). */
export const GUEST_SHARE = '/tmp/work';

export interface VmNode {
  name: string;
  /** Guest eth0, the Node's InternalIP. */
  address: string;
  /** Namespace holding the VM's TAP (runVm's netns). */
  netns: string;
  tap: string;
  /** Address of the apiserver relay in `netns` (what the guest's socat connects to). */
  relayAddress: string;
  apiPort: number;
  /** The agent identity's kubeconfig with certificates inlined (the guest cannot see the lab's files). */
  kubeconfig: string;
  /** Called by runVm's whileRunning as its first step: puts the TAP on the bridge. */
  bridgeTap(): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * Adds the VM node's plumbing and its Node object to a running lab. `host` is the underlay host
 * number of the guest (default: right after the lab's nodes).
 */
export async function addVmNode(
  lab: LocalLab,
  o: { name: string; prefix: string; underlay: string; host: number },
): Promise<VmNode> {
  const net = new Lab();
  const cleanup = () => net.cleanup();
  try {
    const netns = await net.netns(`${o.prefix}-vmh`);
    const address = `${o.underlay}.${o.host}`;
    const relayAddress = `${o.underlay}.250`;
    const tap = `${o.prefix}-tap0`;
    const rootEnd = `${o.prefix}-vmul`;
    await runCapture('ip', ['link', 'del', rootEnd]);
    await ip('link', 'add', rootEnd, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', netns);
    net.onCleanup(() => runCapture('ip', ['link', 'del', rootEnd]));
    await ip('link', 'set', rootEnd, 'master', lab.underlayBridge, 'up');
    await ipIn(netns, 'link', 'add', 'vmbr0', 'type', 'bridge');
    await ipIn(netns, 'link', 'set', 'ul0', 'master', 'vmbr0', 'up');
    await ipIn(netns, 'addr', 'add', `${relayAddress}/24`, 'dev', 'vmbr0');
    await ipIn(netns, 'link', 'set', 'vmbr0', 'up');

    // apiserver relay: root 127.0.0.1:PORT, listened to on the relay address in <prefix>-vmh
    const apiPort = Number(new URL(lab.cp.url).port);
    await bridgeLoopbackPort(net, netns, apiPort, lab.dir, relayAddress);

    // the Node object, as a kubelet would register it
    await lab.cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: o.name, labels: { 'kubernetes.io/hostname': o.name } },
      }),
    });
    await lab.cp.kubectl([
      'patch',
      'node',
      o.name,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { addresses: [{ type: 'InternalIP', address }] } }),
    ]);

    const kubeconfig = inlineKubeconfig(
      await lab.cp.kubeconfigFor({
        user: serviceAccountUser(DEFAULT_NAMESPACE, AGENT_SA),
        groups: ['system:serviceaccounts'],
      }),
    );
    return {
      name: o.name,
      address,
      netns,
      tap,
      relayAddress,
      apiPort,
      kubeconfig,
      async bridgeTap() {
        await ipIn(netns, 'addr', 'flush', 'dev', tap);
        await ipIn(netns, 'link', 'set', tap, 'master', 'vmbr0', 'up');
      },
      cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** A kubeconfig with its certificate and key files turned into *-data fields. */
function inlineKubeconfig(path: string): string {
  const kc = YAML.parse(readFileSync(path, 'utf8')) as {
    clusters: { cluster: Record<string, string> }[];
    users: { user: Record<string, string> }[];
  };
  const b64 = (f: string) => readFileSync(f).toString('base64');
  for (const c of kc.clusters) {
    const ca = c.cluster['certificate-authority'];
    if (ca) {
      c.cluster['certificate-authority-data'] = b64(ca);
      delete c.cluster['certificate-authority'];
    }
  }
  for (const u of kc.users) {
    for (const [file, data] of [
      ['client-certificate', 'client-certificate-data'],
      ['client-key', 'client-key-data'],
    ] as const) {
      const f = u.user[file];
      if (f) {
        u.user[data] = b64(f);
        delete u.user[file];
      }
    }
  }
  return YAML.stringify(kc);
}

/** Paths of the VM node's "host directories", all on the writable share (the host root is read-only). */
export const vmPaths = {
  kubeconfig: `${GUEST_SHARE}/agent.kubeconfig`,
  /** On the chroot's /run tmpfs: a unix socket cannot be bound on 9p. */
  socket: '/run/kube-l2tp/cni.sock',
  cniBin: `${GUEST_SHARE}/opt/cni/bin`,
  cniConf: `${GUEST_SHARE}/etc/cni/net.d`,
  cniState: `${GUEST_SHARE}/var/lib/cni/kube-l2tp`,
  cniCache: `${GUEST_SHARE}/var/lib/cni/cache`,
  netconf: `${GUEST_SHARE}/netconf`,
  noPath: `${GUEST_SHARE}/empty-path`,
};

/**
 * The datapath Pod's command (`kube-l2tp-datapath agent --node-name $(NODE_NAME)`) with the image's
 * entrypoint replaced by this checkout's dist/ and the hostPath volumes replaced by share paths, as
 * the guest (playing the kubelet) runs it inside `chroot /host`.
 */
export function agentCommandLine(node: string): string[] {
  return [
    '/usr/bin/env',
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    'HOME=/tmp',
    `KUBECONFIG=${vmPaths.kubeconfig}`,
    `NODE_NAME=${node}`,
    `POD_NAMESPACE=${DEFAULT_NAMESPACE}`,
    'LOG_LEVEL=info',
    'KUBE_L2TP_RESYNC_SECONDS=2',
    'KUBE_L2TP_STATUS_COUNTER_SECONDS=2',
    process.execPath,
    join(repoRoot(), 'dist/datapath/main.js'),
    'agent',
    '--node-name',
    node,
    '--backend',
    'kernel',
    '--cni-socket',
    vmPaths.socket,
    '--cni-bin-dir',
    vmPaths.cniBin,
    '--cni-conf-dir',
    vmPaths.cniConf,
    '--cni-state-dir',
    vmPaths.cniState,
    '--cni-path',
    `${vmPaths.cniBin}:/usr/lib/cni`,
  ];
}

/** cnitool (from the host's tool cache, run through the chroot) as a runtime on the VM node runs it. */
export function cnitoolCommandLine(
  cmd: 'add' | 'del',
  network: string,
  pod: { name: string; namespace: string; netns: string; ip?: string },
): string[] {
  const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}${pod.ip ? `;IP=${pod.ip}` : ''}`;
  return [
    '/usr/bin/env',
    '-i',
    `PATH=${vmPaths.noPath}`,
    `NETCONFPATH=${vmPaths.netconf}`,
    `CNI_PATH=${vmPaths.cniBin}:/usr/lib/cni`,
    'CNI_IFNAME=net1',
    `CNI_ARGS=${args}`,
    `CNI_CACHE_DIR=${vmPaths.cniCache}`,
    cnitoolPath(),
    cmd,
    network,
    `/run/netns/${pod.netns}`,
  ];
}

/** POSIX shell quoting for the guest script. */
export const shq = (a: string) => (/^[A-Za-z0-9_./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
export const shLine = (argv: string[]) => argv.map(shq).join(' ');
