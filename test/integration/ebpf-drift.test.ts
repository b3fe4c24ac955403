// The ebpf backend converging on a changed world: an underlay route that moves to another device,
// a tunnel whose peer changed while the agent was down, a tunnel removed after a restart while
// another remains on another device, and a session pair an agent left without map entries.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { Lab, inNs, ipIn, requireRoot } from '../harness/netns.js';
import { privateBpffs } from './datapath-ebpf-lab.js';

before(() => requireRoot());

const child = fileURLToPath(new URL('./ebpf-drift-child.js', import.meta.url));

/**
 * aa3dh1 and aa3dh2 joined by two links: A (10.233.1.0/24) and B (10.233.2.0/24). aa3dh1 has
 * 10.233.9.1; aa3dh2 has 10.233.9.2 (routed over A) and 10.233.9.3 (over B).
 */
async function twoLinks(lab: Lab) {
  const h1 = await lab.netns('aa3dh1');
  const h2 = await lab.netns('aa3dh2');
  await lab.veth(
    { ns: h1, name: 'aa3a1', addr: '10.233.1.1/24' },
    { ns: h2, name: 'aa3a2', addr: '10.233.1.2/24' },
  );
  await lab.veth(
    { ns: h1, name: 'aa3b1', addr: '10.233.2.1/24' },
    { ns: h2, name: 'aa3b2', addr: '10.233.2.2/24' },
  );
  await ipIn(h1, 'addr', 'add', '10.233.9.1/32', 'dev', 'lo');
  await ipIn(h2, 'addr', 'add', '10.233.9.2/32', 'dev', 'lo');
  await ipIn(h2, 'addr', 'add', '10.233.9.3/32', 'dev', 'lo');
  await ipIn(h1, 'route', 'add', '10.233.9.2/32', 'via', '10.233.1.2', 'dev', 'aa3a1', 'src', '10.233.9.1');
  await ipIn(h1, 'route', 'add', '10.233.9.3/32', 'via', '10.233.2.2', 'dev', 'aa3b1', 'src', '10.233.9.1');
  await ipIn(h2, 'route', 'add', '10.233.9.1/32', 'via', '10.233.1.1');
  return h1;
}

async function runChild<T>(mode: string): Promise<T> {
  const lab = new Lab();
  try {
    const h1 = await twoLinks(lab);
    const bpffs = await privateBpffs(lab);
    return JSON.parse(await inNs(h1, process.execPath, child, mode, bpffs)) as T;
  } finally {
    await lab.cleanup();
  }
}

describe('ebpf backend: convergence on a changed underlay and after restarts', () => {
  it('a tunnel whose route moves to another device follows it (transmit and receive)', async () => {
    const out = await runChild<{
      state: string;
      txUnderlay: number[];
      linkB: number;
      rxOnA: boolean;
      rxOnB: boolean;
    }>('reroute');
    assert.equal(out.state, 'Up');
    assert.ok(out.txUnderlay.length > 0);
    for (const u of out.txUnderlay) assert.equal(u, out.linkB, 'sessions send out of the new underlay');
    assert.equal(out.rxOnB, true, 'the receive program runs on the new underlay');
    assert.equal(out.rxOnA, false, 'and no more on the old one');
  });

  it('a tunnel whose underlay device is made anew moves to the new one', async () => {
    const out = await runChild<{
      changed: boolean;
      state: string;
      error?: string;
      txUnderlay: number[];
      linkA: number;
      rxOnA: boolean;
    }>('recreate');
    assert.equal(out.changed, true, 'the device has a new ifindex');
    assert.equal(out.state, 'Up', out.error);
    assert.deepEqual(
      out.txUnderlay,
      out.txUnderlay.map(() => out.linkA),
    );
    assert.equal(out.rxOnA, true);
  });

  it('a tunnel retargeted while the agent was down keeps no entry for the old peer', async () => {
    const out = await runChild<{ state: string; tun: { tunnelId: number; remote: string }[] }>('retarget');
    assert.equal(out.state, 'Up');
    assert.deepEqual(out.tun, [{ tunnelId: 1, remote: '10.233.9.3' }]);
  });

  it('after a restart, removing the last tunnel of an underlay detaches the receive program there', async () => {
    const out = await runChild<{ before: Record<string, boolean>; after: Record<string, boolean> }>(
      'release',
    );
    assert.deepEqual(out.before, { rxOnA: true, rxOnB: true });
    assert.deepEqual(out.after, { rxOnA: false, rxOnB: true });
  });

  it('a marked session pair without map entries is removed when its session is not wanted', async () => {
    const out = await runChild<{
      made: string[];
      removed: string[];
      afterPass: string[];
      afterClose: string[];
    }>('orphan');
    assert.deepEqual(out.made, ['l2tpeth9', 'l2tpx9']);
    assert.deepEqual(out.afterPass, [], JSON.stringify(out.removed));
    assert.deepEqual(out.afterClose, []);
  });
});
