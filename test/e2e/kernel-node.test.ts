// Mixed backends on a real cluster: two real nodes (kubelet + containerd + Multus, kube-l2tp installed
// with helm, backend auto) and a third node that is Debian's kernel under QEMU running the agent with
// the kernel backend (test/e2e/kernel-node.ts). Node 1 has a bpffs, so auto picks ebpf; node 2 has
// none, so auto falls back to userspace and says why. One tunnel + pseudowire from each real node to
// the kernel node; a pod on each real node (attached by the runtime through Multus) and a pod in the
// guest per wire (attached through the CNI executable the guest's agent installed) ping each other:
// ebpf <-> kernel l2tp_eth and userspace <-> kernel l2tp_eth, both directions. ONE VM boot.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { L2TPNodeState, Pseudowire } from '../../lib/api/schemas.js';
import { API_VERSION } from '../../lib/api/schemas.js';
import type { PodRef } from '../harness/cluster/cluster.js';
import { chrootPrelude, runVm, vmUnavailable, type VmResult } from '../harness/vm.js';
import { until } from '../harness/wait.js';
import {
  addVmNode,
  agentCommandLine,
  cnitoolCommandLine,
  datapathPodKubeconfig,
  shLine,
  type VmNode,
} from './kernel-node.js';
import {
  e2eLogger,
  progress,
  type RealLab,
  RELEASE_NAMESPACE,
  startTestLab,
  stopTestLab,
} from './real-lab.js';

const skip = vmUnavailable();
const logger = e2eLogger('kernel-node');

const PREFIX = 'kv';
const UNDERLAY = '10.215.0';
const VM_NODE = 'kv-vm';
const VM_ADDRESS = `${UNDERLAY}.30`;
const NS = 'kv-demo';

/** One wire per real node, each to the kernel node. */
interface Wire {
  /** The real node's number in the lab (1: bpffs, auto -> ebpf; 2: no bpffs, auto -> userspace). */
  node: number;
  backend: 'ebpf' | 'userspace';
  name: string;
  podIp: string;
  vmPodIp: string;
}
const WIRES: Wire[] = [
  { node: 1, backend: 'ebpf', name: 'wire-ebpf', podIp: '192.168.215.1', vmPodIp: '192.168.215.2' },
  { node: 2, backend: 'userspace', name: 'wire-user', podIp: '192.168.216.1', vmPodIp: '192.168.216.2' },
];
const vmPod = (w: Wire) => ({ name: `vm-${w.name}`, namespace: NS, netns: `vm-${w.name}` });
const labPod = (w: Wire): PodRef => ({ namespace: NS, name: `pod-${w.name}` });

interface Outcome {
  vm: VmResult;
  hostPings: Map<string, { sent: number; received: number; output: string }>;
  states: L2TPNodeState[];
  wires: Map<string, Pseudowire>;
  hostError?: string;
}

/** The guest script (busybox sh): the agent, CNI ADD + address + ping per wire, then DEL, stop. */
function guestScript(kernelDir: string): string {
  // the host's programs, with the host's PATH (the initramfs PATH would find busybox's ip first)
  const H = 'chroot /host /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin';
  const W = '/work'; // the share as the initramfs sees it; GUEST_SHARE inside the chroot
  const waitFile = (f: string, secs: number) =>
    `i=0; while [ ! -e ${W}/${f} ]; do i=$((i+1)); [ $i -gt ${secs} ] && { echo "timed out waiting for ${f}"; exit 1; }; [ -e ${W}/abort ] && { echo "host aborted"; exit 1; }; sleep 1; done`;
  const perWire = (f: (w: Wire, p: ReturnType<typeof vmPod>) => string[]) =>
    WIRES.flatMap((w) => f(w, vmPod(w)));
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
    ...WIRES.map((w) => `cp ${W}/${w.name}.conf ${W}/netconf/${w.name}.conf`),
    // playing the kubelet: the datapath Pod's command, with the kernel backend
    'step starting the agent',
    `chroot /host ${shLine(agentCommandLine(VM_NODE, RELEASE_NAMESPACE))} >${W}/agent.log 2>&1 &`,
    'AGENT=$!',
    `i=0; until grep -q 'first reconcile done' ${W}/agent.log; do i=$((i+1)); if [ $i -gt 400 ] || grep -q 'datapath failed' ${W}/agent.log || ! kill -0 $AGENT; then echo "agent not ready"; exit 1; fi; sleep 1; done`,
    'step agent ready',
    `touch ${W}/agent-ready`,
    waitFile('go', 400),
    ...perWire((w, p) => [
      `step CNI ADD ${w.name}`,
      `${H} ip netns add ${p.netns}`,
      `chroot /host ${shLine(cnitoolCommandLine('add', w.name, p))} >${W}/cni-add-${w.name}.out 2>&1; echo $? >${W}/cni-add-${w.name}.rc`,
      // the pod's own address, as the example's pods set theirs
      `${H} ip netns exec ${p.netns} ip addr add ${w.vmPodIp}/24 dev net1`,
      `${H} ip netns exec ${p.netns} ip -j addr show >${W}/pod-addr-${w.name}.json 2>&1`,
      `${H} ip netns exec ${p.netns} ping -c 5 -i 0.5 -W 3 ${w.podIp} >${W}/guest-ping-${w.name}.txt 2>&1`,
    ]),
    'step pinged the real nodes pods',
    `touch ${W}/guest-pinged`,
    waitFile('host-done', 300),
    // the independent checker: iproute2 against the real kernel
    `${H} ip l2tp show tunnel >${W}/l2tp-tunnel.txt 2>&1`,
    `${H} ip l2tp show session >${W}/l2tp-session.txt 2>&1`,
    `${H} ip -d -j link show >${W}/links.json 2>&1`,
    ...perWire((w, p) => [
      `chroot /host ${shLine(cnitoolCommandLine('del', w.name, p))} >${W}/cni-del-${w.name}.out 2>&1; echo $? >${W}/cni-del-${w.name}.rc`,
    ]),
    `ls ${W}/var/lib/cni/kube-l2tp >${W}/state-after-del.txt 2>&1`,
    'step CNI DEL done, stopping the agent',
    'kill -TERM $AGENT; wait $AGENT; echo "agent exit $?"',
    'echo guest done',
  ].join('\n');
}

describe(
  'mixed backends on a real cluster: ebpf and userspace nodes <-> a kernel (VM) node',
  { skip: skip ?? false, timeout: 1_200_000 },
  () => {
    let lab: RealLab | undefined;
    let vmNode: VmNode | undefined;
    const out: Outcome = { hostPings: new Map(), states: [], wires: new Map() } as unknown as Outcome;
    const t0 = Date.now();

    before(async () => {
      lab = await startTestLab({
        prefix: PREFIX,
        underlay: UNDERLAY,
        podNet: '10.216',
        withoutBpffs: [2],
        logger,
        progress,
      });
      const nodes = lab.nodeNames;
      vmNode = await addVmNode(lab.cluster, { name: VM_NODE, prefix: PREFIX, address: VM_ADDRESS });
      progress(`VM node ${VM_NODE}=${VM_ADDRESS} registered; real nodes ${nodes.join(', ')}`);
      await lab.apply([
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
        ...WIRES.flatMap((w) => [
          {
            apiVersion: API_VERSION,
            kind: 'L2TPTunnel',
            metadata: { name: `${w.name}-t` },
            spec: {
              encapsulation: 'UDP',
              local: { node: nodes[w.node - 1]! },
              peer: { node: VM_NODE },
              allowedNamespaces: [NS],
            },
          },
          {
            apiVersion: API_VERSION,
            kind: 'Pseudowire',
            metadata: { name: w.name, namespace: NS },
            spec: { tunnelRef: { name: `${w.name}-t` }, attachment: { mode: 'Bridge' } },
          },
        ]),
      ]);
      // what Multus would hand the CNI executable on the VM node: the NAD the operator generated
      const files: Record<string, string> = {
        'agent.kubeconfig': await datapathPodKubeconfig(lab.cluster, RELEASE_NAMESPACE, VM_NODE),
      };
      for (const w of WIRES) {
        const nad = await until(
          `NetworkAttachmentDefinition ${NS}/${w.name}`,
          () =>
            lab!.cluster
              .getJson<{ spec: { config: string } }>(['network-attachment-definitions', '-n', NS, w.name])
              .catch(() => undefined),
          60_000,
        );
        files[`${w.name}.conf`] = JSON.stringify({
          ...(JSON.parse(nad.spec.config) as object),
          name: w.name,
        });
      }

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
        timeoutMs: 900_000,
        files,
        guestScript: guestScript(kernelDir),
        whileRunning: async (work, vm) => {
          try {
            await node.bridgeTap();
            await vm.waitForFile('agent-ready', 500_000);
            progress(`agent in the VM ready after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
            for (const w of WIRES) out.wires.set(w.name, await lab!.waitPseudowireReady(NS, w.name, 180_000));
            await lab!.apply(WIRES.map((w) => podManifest(lab!, w, nodes[w.node - 1]!)));
            await lab!.waitPodsReady(WIRES.map(labPod), 180_000);
            progress('pseudowires Ready, a pod on each real node attached through Multus');
            await writeFile(join(work, 'go'), '1');
            await vm.waitForFile('guest-pinged', 300_000);
            for (const w of WIRES) out.hostPings.set(w.name, await lab!.ping(labPod(w), w.vmPodIp, 5));
            out.states = await lab!.nodeStates();
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
      const failed =
        !out.vm ||
        out.hostError ||
        out.vm.guestRc !== 0 ||
        WIRES.some((w) => out.hostPings.get(w.name)?.received !== 5);
      if (out.vm && failed) {
        console.log('--- console (tail)\n' + out.vm.console.slice(-3000));
        console.log('--- guest.log (tail)\n' + out.vm.guestLog.slice(-4000));
        console.log('--- agent.log (tail)\n' + (out.vm.files['agent.log'] ?? '').slice(-4000));
      }
      await vmNode?.cleanup();
      await stopTestLab(lab, PREFIX);
      console.log(`  · total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });

    const state = (node: string) => out.states.find((s) => s.spec?.nodeName === node);

    it('the guest ran to the end; the backends are kernel (VM), ebpf (bpffs) and userspace (no bpffs, reason given)', () => {
      assert.equal(out.hostError, undefined, out.hostError);
      assert.equal(out.vm.timedOut, false, 'VM timed out');
      assert.equal(out.vm.guestRc, 0, `guest script failed:\n${out.vm.guestLog.slice(-2000)}`);
      assert.equal(state(VM_NODE)?.status?.backend, 'kernel', JSON.stringify(state(VM_NODE)?.status));
      for (const w of WIRES) {
        const s = state(lab!.nodeNames[w.node - 1]!)?.status;
        assert.equal(s?.backend, w.backend, JSON.stringify(s));
        const ready = out.wires.get(w.name)?.status?.conditions?.find((c) => c.type === 'Ready');
        assert.equal(ready?.status, 'True', w.name);
      }
      const fallback = state(lab!.nodeNames[1]!)?.status;
      assert.match(JSON.stringify(fallback), /bpffs/, 'the userspace node says why ebpf was not used');
    });

    it('CNI ADD in the VM put a pod on each pseudowire; DEL left no state', () => {
      const f = out.vm.files;
      const links = JSON.parse(f['links.json'] ?? '[]') as {
        ifname: string;
        master?: string;
        linkinfo?: { info_kind?: string };
      }[];
      for (const w of WIRES) {
        assert.equal(
          f[`cni-add-${w.name}.rc`]?.trim(),
          '0',
          `CNI ADD ${w.name}:\n${f[`cni-add-${w.name}.out`]}`,
        );
        const addrs = JSON.parse(f[`pod-addr-${w.name}.json`] ?? '[]') as {
          ifname: string;
          addr_info: { local: string }[];
        }[];
        assert.ok(
          addrs.find((l) => l.ifname === 'net1')?.addr_info.some((a) => a.local === w.vmPodIp),
          f[`pod-addr-${w.name}.json`],
        );
        assert.equal(
          f[`cni-del-${w.name}.rc`]?.trim(),
          '0',
          `CNI DEL ${w.name}:\n${f[`cni-del-${w.name}.out`]}`,
        );
        // before the DEL: the kernel's l2tpeth device of this wire and a veth on one bridge
        const tunnel = state(VM_NODE)?.spec?.tunnels.find((t) => t.name === `${w.name}-t`);
        const ifname = tunnel?.sessions[0]?.ifname;
        const dev = links.find((l) => l.ifname === ifname);
        assert.ok(dev?.master, `${ifname} on a bridge in the VM: ${f['links.json']}`);
        assert.ok(
          links.some((l) => l.master === dev.master && l.linkinfo?.info_kind === 'veth'),
          `a veth on ${dev.master}`,
        );
      }
      assert.doesNotMatch(
        f['state-after-del.txt'] ?? '',
        /_net1\.json/,
        `attachment state left after DEL: ${f['state-after-del.txt']}`,
      );
    });

    it('the kernel holds the tunnels and sessions the operator rendered (ip l2tp show)', () => {
      const f = out.vm.files;
      const tunnels = state(VM_NODE)?.spec?.tunnels ?? [];
      assert.equal(tunnels.length, WIRES.length, 'the VM node state has a tunnel per wire');
      for (const t of tunnels) {
        const sess = t.sessions[0]!;
        assert.match(f['l2tp-tunnel.txt'] ?? '', new RegExp(`Tunnel ${t.tunnelId}, encap UDP`));
        assert.match(f['l2tp-tunnel.txt'] ?? '', new RegExp(`Peer tunnel ${t.peerTunnelId}\\b`));
        assert.match(
          f['l2tp-session.txt'] ?? '',
          new RegExp(`Session ${sess.sessionId} in tunnel ${t.tunnelId}\\b`),
        );
        assert.match(f['l2tp-session.txt'] ?? '', new RegExp(`Peer session ${sess.peerSessionId}\\b`));
      }
    });

    for (const w of WIRES) {
      it(`${w.backend} <-> kernel: the pods ping each other both ways across ${w.name}`, () => {
        const txt = out.vm.files[`guest-ping-${w.name}.txt`] ?? '';
        const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(txt);
        assert.ok(m, txt);
        assert.equal(Number(m[2]), 5, `guest -> ${w.backend} node: ${txt}`);
        const host = out.hostPings.get(w.name);
        assert.equal(host?.received, 5, `${w.backend} node -> guest: ${host?.output}`);
      });
    }
  },
);

/** A pod on a real node on one wire, setting its own address as the README's example pods do. */
function podManifest(lab: RealLab, w: Wire, node: string): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: labPod(w).name, namespace: NS, annotations: { 'k8s.v1.cni.cncf.io/networks': w.name } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': node },
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'shell',
          image: lab.o.images.tools.name,
          command: ['sh', '-c', `ip addr add ${w.podIp}/24 dev net1 && exec sleep infinity`],
          securityContext: { capabilities: { add: ['NET_ADMIN'] } },
        },
      ],
    },
  };
}
