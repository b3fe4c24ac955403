// Issue 9, mixed backends: a userspace node talking to a kernel node, with the real control plane.
// The local lab (real apiserver + etcd, the operator, the kubelet stand-in) runs one namespace node
// with the USERSPACE backend; a second node is Debian's kernel under QEMU (test/harness/vm.ts) on the
// same underlay, running this checkout's agent INSIDE the guest with --backend kernel. The VM plays
// its own kubelet: the operator's datapath Pod for it stays Pending and the guest starts the agent
// with that Pod's command line. One L2TPTunnel + Pseudowire joins the two nodes; a pod on each side is
// attached by the real CNI path (cnitool -> the static C shim -> the agent's socket), the VM's pod in
// a network namespace inside the guest; the pods ping each other across the pseudowire.
// ONE VM boot. Skips only when vmUnavailable() says why.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { L2TPNodeState, Pseudowire } from '../../lib/api/schemas.js';
import { API_VERSION } from '../../lib/api/schemas.js';
import { createLogger } from '../../lib/log.js';
import { requireRoot } from '../harness/netns.js';
import { chrootPrelude, runVm, vmUnavailable, type VmResult } from '../harness/vm.js';
import { until } from '../harness/wait.js';
import {
  addVmNode,
  agentCommandLine,
  cnitoolCommandLine,
  shLine,
  vmPaths,
  type VmNode,
} from './kernel-node.js';
import { LocalLab, type LabPod } from './lab.js';

const skip = vmUnavailable();
const logger = createLogger({ name: 'e2e-kernel-node', level: 'warn', destination: 'stderr' });
const progress = (m: string) => console.log(`  · ${m}`);

const PREFIX = 'kv';
const UNDERLAY = '10.215.0';
const VM_NODE = 'kv-vm';
const NETWORK = 'mixed-wire';
const LAB_POD_IP = '192.168.215.1';
const VM_POD_IP = '192.168.215.2';

interface Outcome {
  vm: VmResult;
  hostPing?: { sent: number; received: number; output: string };
  vmState?: L2TPNodeState | undefined;
  labState?: L2TPNodeState | undefined;
  pw?: Pseudowire;
  hostError?: string;
}

/** The guest script (busybox sh): relay to the apiserver, the agent, CNI ADD, ping, CNI DEL, stop. */
function guestScript(vmNode: VmNode, kernelDir: string): string {
  // the host's programs, with the host's PATH (the initramfs PATH would find busybox's ip first)
  const H = 'chroot /host /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin';
  const W = '/work'; // the share as the initramfs sees it; GUEST_SHARE inside the chroot
  const waitFile = (f: string, secs: number) =>
    `i=0; while [ ! -e ${W}/${f} ]; do i=$((i+1)); [ $i -gt ${secs} ] && { echo "timed out waiting for ${f}"; exit 1; }; [ -e ${W}/abort ] && { echo "host aborted"; exit 1; }; sleep 1; done`;
  const pod = { name: 'vm-pod', namespace: 'default', netns: 'vm-pod', ip: `${VM_POD_IP}/24` };
  return [
    'step() { echo "[$(cut -d" " -f1 /proc/uptime)s] $*"; }',
    chrootPrelude(),
    // what any node has and the test initramfs does not load: bridge + veth for the CNI attachment
    // (modules of the same Debian kernel package, read through the host share)
    `M=$(ls -d /host${kernelDir}/root/lib/modules/*/kernel)`,
    // and a writable /var/lib/cni (cnitool caches results there whatever CNI_CACHE_DIR says)
    'if [ -d /host/var/lib/cni ]; then mount -t tmpfs cni /host/var/lib/cni; else mount -t tmpfs varlib /host/var/lib; fi',
    'for m in net/llc/llc.ko net/802/stp.ko net/bridge/bridge.ko drivers/net/veth.ko; do insmod $M/$m || step "insmod $m failed"; done',
    `mkdir -p /host/run/kube-l2tp ${W}/opt/cni/bin ${W}/etc/cni/net.d ${W}/var/lib/cni/kube-l2tp ${W}/var/lib/cni/cache ${W}/empty-path ${W}/netconf`,
    `cp ${W}/${NETWORK}.conf ${W}/netconf/${NETWORK}.conf`,
    // the lab's kubeconfig names https://127.0.0.1:PORT: relay it to the apiserver relay on the underlay
    `${H} socat TCP-LISTEN:${vmNode.apiPort},bind=127.0.0.1,fork,reuseaddr TCP:${vmNode.relayAddress}:${vmNode.apiPort} >${W}/socat.log 2>&1 &`,
    // playing the kubelet: the datapath Pod's command, with the kernel backend
    'step starting the agent',
    `chroot /host ${shLine(agentCommandLine(VM_NODE))} >${W}/agent.log 2>&1 &`,
    'AGENT=$!',
    `i=0; until grep -q 'first reconcile done' ${W}/agent.log; do i=$((i+1)); if [ $i -gt 400 ] || grep -q 'datapath failed' ${W}/agent.log || ! kill -0 $AGENT; then echo "agent not ready"; exit 1; fi; sleep 1; done`,
    'step agent ready',
    `touch ${W}/agent-ready`,
    waitFile('go', 400),
    'step CNI ADD',
    `${H} ip netns add ${pod.netns}`,
    `chroot /host ${shLine(cnitoolCommandLine('add', NETWORK, pod))} >${W}/cni-add.out 2>&1; echo $? >${W}/cni-add.rc`,
    `${H} ip netns exec ${pod.netns} ip -j addr show >${W}/pod-addr.json 2>&1`,
    `${H} ip netns exec ${pod.netns} ping -c 5 -i 0.5 -W 3 ${LAB_POD_IP} >${W}/guest-ping.txt 2>&1; echo $? >${W}/guest-ping.rc`,
    'step pinged the lab pod',
    `touch ${W}/guest-pinged`,
    waitFile('host-done', 300),
    // the independent checker: iproute2 against the real kernel
    `${H} ip l2tp show tunnel >${W}/l2tp-tunnel.txt 2>&1`,
    `${H} ip l2tp show session >${W}/l2tp-session.txt 2>&1`,
    `${H} ip -d -j link show >${W}/links.json 2>&1`,
    `chroot /host ${shLine(cnitoolCommandLine('del', NETWORK, pod))} >${W}/cni-del.out 2>&1; echo $? >${W}/cni-del.rc`,
    'step CNI DEL done, stopping the agent',
    'kill -TERM $AGENT; wait $AGENT; echo "agent exit $?"',
    'echo guest done',
  ].join('\n');
}

describe(
  'mixed backends: userspace lab node <-> kernel VM node (issue 9)',
  { skip: skip ?? false, timeout: 900_000 },
  () => {
    let lab: LocalLab | undefined;
    let vmNode: VmNode | undefined;
    let labNode = '';
    let labPod: LabPod | undefined;
    const out = {} as Outcome;
    const t0 = Date.now();

    before(async () => {
      requireRoot();
      lab = await LocalLab.start({
        nodes: 1,
        prefix: PREFIX,
        underlay: UNDERLAY,
        backend: 'userspace',
        logger,
        progress,
      });
      labNode = lab.nodes[0]!.name;
      vmNode = await addVmNode(lab, { name: VM_NODE, prefix: PREFIX, underlay: UNDERLAY, host: 12 });
      progress(`VM node ${VM_NODE}=${vmNode.address} (apiserver relay at ${vmNode.relayAddress})`);
      await lab.apply([
        {
          apiVersion: API_VERSION,
          kind: 'L2TPTunnel',
          metadata: { name: 'mixed' },
          spec: { encapsulation: 'UDP', local: { node: labNode }, peer: { node: VM_NODE } },
        },
        {
          apiVersion: API_VERSION,
          kind: 'Pseudowire',
          metadata: {
            name: NETWORK,
            namespace: 'default',
            annotations: { 'l2tp.kube-l2tp.io/ipam': JSON.stringify({ type: 'static' }) },
          },
          spec: { tunnelRef: { name: 'mixed' }, attachment: { mode: 'Bridge' } },
        },
      ]);
      // the NAD the operator generated, pointed at the VM node's agent socket (what Multus would pass)
      const nad = await until(
        `NetworkAttachmentDefinition default/${NETWORK}`,
        () =>
          lab!
            .get<{ spec: { config: string } }>(['network-attachment-definitions', '-n', 'default', NETWORK])
            .catch(() => undefined),
        60_000,
      );
      const conf = { ...(JSON.parse(nad.spec.config) as object), name: NETWORK, agentSocket: vmPaths.socket };

      const kernelDir = process.env.KUBE_L2TP_KERNEL_DIR!;
      const node = vmNode;
      progress('booting the VM node (Debian kernel under QEMU/TCG; the agent runs inside it)');
      out.vm = await runVm({
        kernelDir,
        netns: node.netns,
        tap: node.tap,
        // runVm addresses the TAP; bridgeTap() flushes that and puts the TAP on the underlay bridge
        hostAddr: '10.215.1.1/32',
        guestAddr: `${node.address}/24`,
        timeoutMs: 780_000,
        files: {
          'agent.kubeconfig': node.kubeconfig,
          [`${NETWORK}.conf`]: JSON.stringify(conf),
        },
        guestScript: guestScript(node, kernelDir),
        whileRunning: async (work, vm) => {
          try {
            await node.bridgeTap();
            await vm.waitForFile('agent-ready', 500_000);
            progress(`agent in the VM ready after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
            out.pw = await lab!.waitPseudowireReady('default', NETWORK, 180_000);
            labPod = await lab!.attachPod({
              name: 'lab-pod',
              node: labNode,
              namespace: 'default',
              network: NETWORK,
              ip: `${LAB_POD_IP}/24`,
            });
            await writeFile(join(work, 'go'), '1');
            await vm.waitForFile('guest-pinged', 300_000);
            out.hostPing = await lab!.ping(labPod, VM_POD_IP, 5);
            const states = await lab!.nodeStates();
            out.vmState = states.find((s) => s.spec?.nodeName === VM_NODE);
            out.labState = states.find((s) => s.spec?.nodeName === labNode);
            await writeFile(join(work, 'host-done'), '1');
          } catch (e) {
            // let the guest stop on its own, so its logs come back with the result
            out.hostError = String(e);
            await writeFile(join(work, 'abort'), out.hostError);
          }
        },
      });
      progress(`VM run took ${(out.vm.durationMs / 1000).toFixed(1)} s`);
    });

    after(async () => {
      if (out.vm && (out.hostError || out.vm.guestRc !== 0 || out.hostPing?.received !== 5)) {
        console.log('--- console (tail)\n' + out.vm.console.slice(-3000));
        console.log('--- guest.log (tail)\n' + out.vm.guestLog.slice(-4000));
        console.log('--- agent.log (tail)\n' + (out.vm.files['agent.log'] ?? '').slice(-4000));
        const labAgent = [...(lab?.podLogs.entries() ?? [])].find(([k]) => k.includes(labNode));
        if (labAgent) console.log('--- lab agent (tail)\n' + labAgent[1].slice(-40).join('\n'));
      }
      await vmNode?.cleanup();
      await lab?.stop();
      console.log(`  · total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });

    it('the guest ran to the end and its agent used the kernel backend', () => {
      assert.equal(out.hostError, undefined, out.hostError);
      assert.equal(out.vm.timedOut, false, 'VM timed out');
      assert.equal(out.vm.guestRc, 0, `guest script failed:\n${out.vm.guestLog.slice(-2000)}`);
      assert.equal(out.vmState?.status?.backend, 'kernel', JSON.stringify(out.vmState?.status));
      assert.equal(out.labState?.status?.backend, 'userspace', JSON.stringify(out.labState?.status));
      const ready = out.pw?.status?.conditions?.find((c) => c.type === 'Ready');
      assert.equal(ready?.status, 'True');
    });

    it('CNI ADD in the VM (cnitool -> shim -> agent) put the pod on the pseudowire', () => {
      const f = out.vm.files;
      assert.equal(f['cni-add.rc']?.trim(), '0', `CNI ADD in the guest:\n${f['cni-add.out']}`);
      const addrs = JSON.parse(f['pod-addr.json'] ?? '[]') as {
        ifname: string;
        addr_info: { local: string }[];
      }[];
      const net1 = addrs.find((l) => l.ifname === 'net1');
      assert.ok(net1, `net1 in the VM pod: ${f['pod-addr.json']}`);
      assert.ok(net1.addr_info.some((a) => a.local === VM_POD_IP));
      assert.equal(f['cni-del.rc']?.trim(), '0', `CNI DEL in the guest:\n${f['cni-del.out']}`);
      // before the DEL: the kernel's l2tpeth device and the pod's veth on one bridge
      const ifname = out.vmState?.spec?.tunnels[0]?.sessions[0]?.ifname;
      const links = JSON.parse(f['links.json'] ?? '[]') as {
        ifname: string;
        master?: string;
        linkinfo?: { info_kind?: string };
      }[];
      const pw = links.find((l) => l.ifname === ifname);
      assert.ok(pw?.master, `${ifname} on a bridge in the VM: ${f['links.json']}`);
      assert.ok(
        links.some((l) => l.master === pw.master && l.linkinfo?.info_kind === 'veth'),
        `the pod's veth on ${pw.master}`,
      );
    });

    it('the kernel holds the tunnel and session the operator rendered (ip l2tp show)', () => {
      const f = out.vm.files;
      const s = out.vmState?.spec?.tunnels[0];
      assert.ok(s, 'VM node state has the tunnel');
      const sess = s.sessions[0]!;
      assert.match(f['l2tp-tunnel.txt'] ?? '', new RegExp(`Tunnel ${s.tunnelId}, encap UDP`));
      assert.match(f['l2tp-tunnel.txt'] ?? '', new RegExp(`Peer tunnel ${s.peerTunnelId}`));
      assert.match(
        f['l2tp-session.txt'] ?? '',
        new RegExp(`Session ${sess.sessionId} in tunnel ${s.tunnelId}`),
      );
      assert.match(f['l2tp-session.txt'] ?? '', new RegExp(`Peer session ${sess.peerSessionId}`));
    });

    it('pod in the VM pings the lab pod across the pseudowire', () => {
      const txt = out.vm.files['guest-ping.txt'] ?? '';
      const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(txt);
      assert.ok(m, txt);
      assert.equal(Number(m[2]), 5, txt);
    });

    it('lab pod pings the pod in the VM across the pseudowire', () => {
      assert.equal(out.hostPing?.received, 5, out.hostPing?.output);
    });
  },
);
