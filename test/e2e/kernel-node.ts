// A kernel node for a real cluster: Debian's kernel under QEMU (test/harness/vm.ts) on the cluster's
// underlay, registered as a Node with an InternalIP there, running this checkout's datapath agent
// inside the guest with the kernel backend (l2tp_eth).
//
//   <prefix>-cp netns: the underlay bridge (the apiserver listens on it) --veth-- <prefix>-vmh netns
//   <prefix>-vmh:      bridge vmbr0 = { the veth end, the VM's TAP }
//   guest:             eth0 = the Node's InternalIP; reaches the apiserver on the underlay directly
//
// The guest runs no kubelet or container runtime (TCG emulates every instruction; the agent alone
// is slow to start there), so it plays the kubelet's part for the one pod that matters: the operator binds a datapath
// Pod to this Node (it tolerates every taint), and the guest runs that Pod's command with a token the
// apiserver issued for that Pod (TokenRequest, as the kubelet's projected token), so the agent is
// who the cluster thinks it is, node-bound identity included. Test pods in the guest are attached as
// the runtime would attach them: cnitool runs the CNI executable the agent installed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_SA } from '../../lib/api/rbac.js';
import type { RealCluster } from '../harness/cluster/cluster.js';
import { cnitoolPath } from '../harness/cnitool.js';
import { ipIn, Lab } from '../harness/netns.js';
import { repoRoot } from '../harness/vm.js';
import { until } from '../harness/wait.js';

const NODE_RESOURCES = { cpu: '1', memory: '1Gi', pods: '10' };

/** Where the guest sees the writable share after chrootPrelude(). */
export const GUEST_SHARE = '/tmp/work';

export interface VmNode {
  name: string;
  /** Guest eth0, the Node's InternalIP. */
  address: string;
  /** Namespace holding the VM's TAP (runVm's netns). */
  netns: string;
  tap: string;
  /** Called by runVm's whileRunning as its first step: puts the TAP on the bridge. */
  bridgeTap(): Promise<void>;
  cleanup(): Promise<void>;
}

/** Adds the VM node's plumbing and its Node object to a running cluster; `address` is on its underlay. */
export async function addVmNode(
  cluster: RealCluster,
  o: { name: string; prefix: string; address: string },
): Promise<VmNode> {
  const net = new Lab();
  const cleanup = () => net.cleanup();
  try {
    const netns = await net.netns(`${o.prefix}-vmh`);
    const tap = `${o.prefix}-tap0`;
    const port = `${o.prefix}-vm`;
    // deleting <prefix>-vmh removes both ends of the pair
    await ipIn(netns, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', port, 'netns', cluster.cpNetns);
    await ipIn(cluster.cpNetns, 'link', 'set', port, 'master', cluster.underlayBridge, 'up');
    await ipIn(netns, 'link', 'add', 'vmbr0', 'type', 'bridge');
    await ipIn(netns, 'link', 'set', 'ul0', 'master', 'vmbr0', 'up');
    await ipIn(netns, 'link', 'set', 'vmbr0', 'up');

    // the Node object, as a kubelet registers it
    await cluster.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: o.name, labels: { 'kubernetes.io/hostname': o.name, 'kubernetes.io/os': 'linux' } },
      }),
    });
    net.onCleanup(() => cluster.kubectl(['delete', 'node', o.name, '--ignore-not-found', '--wait=false']));
    await cluster.kubectl([
      'patch', 'node', o.name, '--subresource=status', '--type=merge',
      '-p', JSON.stringify({
        status: {
          addresses: [{ type: 'InternalIP', address: o.address }],
          // what the scheduler fits pods against: without it no pod with requests lands here
          capacity: NODE_RESOURCES,
          allocatable: NODE_RESOURCES,
        },
      }),
    ]); // prettier-ignore
    return {
      name: o.name,
      address: o.address,
      netns,
      tap,
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

/**
 * The kubeconfig the guest's agent uses: the cluster's internal apiserver address, its CA, and a
 * token the apiserver issued for the datapath Pod the operator bound to `node` (what the kubelet
 * mounts into that Pod), so the agent carries the node-bound identity the chart's policy checks.
 */
export async function datapathPodKubeconfig(
  cluster: RealCluster,
  namespace: string,
  node: string,
): Promise<string> {
  const pod = await until(
    `the datapath Pod bound to ${node}`,
    async () => {
      const pods = await cluster.getJson<{ items: { metadata: { name: string; uid: string } }[] }>([
        'pods', '-n', namespace, '-l', 'app.kubernetes.io/component=datapath', '--field-selector', `spec.nodeName=${node}`,
      ]); // prettier-ignore
      return pods.items[0];
    },
    120_000,
    500,
  ).catch(async (e: Error) => {
    const pods = await cluster.kubectl(['get', 'pods', '-n', namespace, '-o', 'wide']).catch(() => '');
    const events = await cluster.kubectl(['get', 'events', '-n', namespace]).catch(() => '');
    throw new Error(`${e.message}\n${pods}\n${events}`);
  });
  const file = await cluster.cp.serviceAccountKubeconfig(namespace, AGENT_SA, {
    boundPod: pod.metadata,
    server: cluster.cp.internalUrl,
    duration: '2h',
  });
  return readFileSync(file, 'utf8');
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
export function agentCommandLine(node: string, namespace: string): string[] {
  return [
    '/usr/bin/env',
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    'HOME=/tmp',
    `KUBECONFIG=${vmPaths.kubeconfig}`,
    `NODE_NAME=${node}`,
    `POD_NAMESPACE=${namespace}`,
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
  pod: { name: string; namespace: string; netns: string },
): string[] {
  const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`;
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
