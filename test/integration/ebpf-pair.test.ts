// The ebpf backend's session pairs against the real kernel. The backend counts a device on its shared
// tc blocks as its own by the ownership marker, so a new pair carries the marker before anything
// binds the blocks. An agent killed between making a pair and marking it leaves a pair with no
// marker: the next one recognises it (both ends, under the session's names, down and without an
// alias) and makes it anew, while a device under those names that someone uses stays and is reported.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { inNs, Lab, requireRoot } from '../harness/netns.js';
import { privateBpffs } from './datapath-ebpf-lab.js';
import { twoHosts } from './datapath-lab.js';

before(() => requireRoot());

const child = fileURLToPath(new URL('./ebpf-pair-child.js', import.meta.url));

describe('ebpf session pairs', () => {
  it('a new pair is marked, sized and still down when its qdiscs are bound; a failed step leaves nothing', async () => {
    const lab = new Lab();
    try {
      const ns = await lab.netns('ebpmake');
      const out = JSON.parse(await inNs(ns, process.execPath, child, 'make')) as Record<string, unknown>;
      const owner = { tunnelId: 3, sessionId: 7 };
      assert.deepEqual(out.during, {
        peer: { owner, up: false, mtu: 1400 },
        dev: { owner, up: false, mtu: 1400 },
      });
      assert.deepEqual(out.after, {
        peer: { owner, up: true, mtu: 1400 },
        dev: { owner, up: true, mtu: 1400 },
      });
      assert.equal(out.failed, 'prepare failed');
      assert.deepEqual(out.left, ['l2tpeth7', 'l2tpx7']);
    } finally {
      await lab.cleanup();
    }
  });

  it('an unfinished pair from a killed agent is made anew; an unmarked pair that is up stays and is reported', async () => {
    const lab = new Lab();
    try {
      const h = await twoHosts(lab, 'ebp', 133);
      const bpffs = await privateBpffs(lab);
      const out = JSON.parse(await inNs(h.h1, process.execPath, child, 'adopt', bpffs, h.u1, h.u2)) as {
        sessions: { sessionId: number; state: string; error?: string }[];
        veths: { ifname: string; up: boolean; owner?: { tunnelId: number; sessionId: number } }[];
        remade: number[];
      };
      const byId = new Map(out.sessions.map((s) => [s.sessionId, s]));
      assert.equal(byId.get(1)?.state, 'Up', JSON.stringify(byId.get(1)));
      assert.equal(byId.get(3)?.state, 'Up', JSON.stringify(byId.get(3)));
      assert.notEqual(byId.get(2)?.state, 'Up');
      assert.match(String(byId.get(2)?.error), /l2tpx2.*not this session's peer device/);
      assert.deepEqual(out.remade, [1]);
      const owner = (sessionId: number) => ({ tunnelId: 1, sessionId });
      assert.deepEqual(out.veths, [
        { ifname: 'l2tpeth1', up: true, owner: owner(1) },
        { ifname: 'l2tpeth2', up: false },
        { ifname: 'l2tpeth3', up: true, owner: owner(3) },
        { ifname: 'l2tpx1', up: true, owner: owner(1) },
        { ifname: 'l2tpx2', up: true },
        { ifname: 'l2tpx3', up: true, owner: owner(3) },
      ]);
    } finally {
      await lab.cleanup();
    }
  });
});
