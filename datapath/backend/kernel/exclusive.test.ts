// Exclusive mode with the kernel backend: the CNI moves l2tpethN itself into the pod (and renames it
// there). The kernel keeps reporting the session under the name it was made with, and the node's
// namespace has no device of that name any more. Such a session is still ours and converged (the
// CNI's records say which pod holds the device): not a foreign device, not a failed session, and
// removed when its pseudowire goes. Driven through reconcile against a kernel faked at the netlink
// calls the backend makes (no kernel L2TP on the machines that run the tests).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { silentLogger } from '../../../lib/log.js';
import type { L2tpSessionInfo, L2tpTunnelInfo } from '../../../lib/netlink/l2tp.js';
import type { LinkInfo } from '../../../lib/netlink/rtnl.js';
import { reconcile, type DesiredState } from '../../agent/reconcile.js';
import type { PodDevice } from '../types.js';
import { KernelBackend } from './index.js';

const tunnelSpec = {
  tunnelId: 1,
  peerTunnelId: 2,
  encap: 'udp' as const,
  local: '10.233.0.1',
  remote: '10.233.0.2',
  udpSourcePort: 1701,
  udpDestinationPort: 1701,
  udpChecksum: false,
};
const session = {
  tunnelId: 1,
  sessionId: 5,
  peerSessionId: 6,
  ifname: 'l2tpeth5',
  name: 'l2tpeth5',
  l2specType: 'default' as const,
  sendSequence: false,
  requireSequence: false,
  reorderTimeoutMs: 0,
  mtu: 1446,
};
const desired = (withSession: boolean): DesiredState => ({
  tunnels: [{ spec: tunnelSpec, sessions: withSession ? [session] : [] }],
});

/** The kernel's tunnel 1 and session 5, whose device a pod holds; what the backend deleted. */
function fakeKernel() {
  const tunnels = new Map<number, L2tpTunnelInfo>([[1, { ...tunnelSpec, protoVersion: 3 }]]);
  const sessions = new Map<number, L2tpSessionInfo>([
    [
      5,
      {
        tunnelId: 1,
        sessionId: 5,
        peerSessionId: 6,
        pwType: 5,
        ifname: 'l2tpeth5', // the name it was made with, reported even once renamed in the pod
        l2specType: 'default',
        sendSequence: false,
        requireSequence: false,
        reorderTimeoutMs: 0,
      },
    ],
  ]);
  const links: LinkInfo[] = []; // l2tpeth5 is in the pod's namespace
  const deleted: string[] = [];
  const conn = {
    genl: { close() {} },
    rtnl: { close() {} },
    l2tp: {
      getTunnel: async (id: number) => tunnels.get(id),
      getSession: async (t: number, s: number) =>
        sessions.get(s)?.tunnelId === t ? sessions.get(s) : undefined,
      dumpTunnels: async () => [...tunnels.values()],
      dumpSessions: async () => [...sessions.values()],
      createTunnel: async () => assert.fail('no tunnel is to be made'),
      createSession: async () => assert.fail('no session is to be made'),
      modifySession: async () => {},
      deleteTunnel: async (id: number) => {
        deleted.push(`tunnel ${id}`);
        tunnels.delete(id);
      },
      deleteSession: async (t: number, s: number) => {
        deleted.push(`session ${t}/${s}`);
        sessions.delete(s);
      },
    },
    links: {
      list: async () => links,
      byName: async (name: string) => links.find((l) => l.name === name),
      set: async () => assert.fail('no node device is to be changed'),
    },
  };
  return { conn, deleted };
}

const inPod = async (ifname: string): Promise<PodDevice | undefined> =>
  ifname === 'l2tpeth5' ? { netns: '/var/run/netns/pod-a', ifname: 'net1' } : undefined;

function backendOn(conn: unknown) {
  const b = new KernelBackend(silentLogger(), { podDevice: inPod });
  (b as unknown as { conn: Promise<unknown> }).conn = Promise.resolve(conn);
  return b;
}

describe('kernel backend: a session device moved into a pod (exclusive mode)', () => {
  it('is ours and up, not a foreign device; it goes with its pseudowire', async () => {
    const k = fakeKernel();
    const b = backendOn(k.conn);
    const listed = await b.listSessions();
    assert.deepEqual(
      listed.map((s) => ({ sessionId: s.sessionId, owned: s.owned })),
      [{ sessionId: 5, owned: true }],
    );
    const r = await reconcile(b, desired(true), silentLogger());
    assert.deepEqual(r.conflicts, []);
    assert.deepEqual(
      r.sessions.map((s) => ({ state: s.state, error: s.error })),
      [{ state: 'Up', error: undefined }],
    );
    const gone = await reconcile(b, desired(false), silentLogger());
    assert.deepEqual(gone.conflicts, []);
    assert.deepEqual(k.deleted, ['session 1/5']);
  });

  it('without a record of a pod holding it, a session with no device here is not claimed', async () => {
    const k = fakeKernel();
    const b = new KernelBackend(silentLogger(), { podDevice: async () => undefined });
    (b as unknown as { conn: Promise<unknown> }).conn = Promise.resolve(k.conn);
    assert.deepEqual(
      (await b.listSessions()).map((s) => s.owned),
      [false],
    );
  });
});
