// Restart: kill -9 the datapath under `ping -i 0.01`, start it again. The persistent TAP survives
// with its bridge membership, the new process reattaches to it, and traffic resumes.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Lab, inNsCapture, ipIn, linkIn, ping, requireRoot } from '../harness/netns.js';
import { backgroundPing, pairConfigs, podOn, startDatapath, twoHosts } from './datapath-lab.js';

before(() => requireRoot());

describe('datapath restart', () => {
  it('reattaches the persistent TAP after kill -9; pods keep their links', async () => {
    const lab = new Lab();
    try {
      const h = await twoHosts(lab, 'kdr', 70);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', cookieLength: 4 });
      const d1 = await startDatapath(lab, h.h1, c1);
      await startDatapath(lab, h.h2, c2);
      await podOn(lab, h.h1, 'kdrp1', 'kdbr', 'l2tpeth0', '10.201.204.1/24', 1442);
      await podOn(lab, h.h2, 'kdrp2', 'kdbr', 'l2tpeth0', '10.201.204.2/24', 1442);
      const tapBefore = (await linkIn(h.h1, 'l2tpeth0'))!;
      const podBefore = (await linkIn('kdrp1', 'eth0'))!;

      const COUNT = 1000;
      const pinged = backgroundPing(lab, 'kdrp1', '10.201.204.2', COUNT, ['-W', '1']);

      await new Promise((r) => setTimeout(r, 2000));
      await d1.kill9();
      const killedAt = Date.now();
      // The device and its bridge port outlive the process.
      const tapDuring = (await linkIn(h.h1, 'l2tpeth0'))!;
      assert.equal(tapDuring.ifindex, tapBefore.ifindex);
      assert.equal(tapDuring.master, 'kdbr');

      const d1b = await startDatapath(lab, h.h1, c1);
      const gap = Date.now() - killedAt;
      const reattached = d1b.lines.find((l) => l.msg === 'session reattached to existing TAP');
      assert.ok(reattached, 'the new process reattached instead of creating');
      const tapAfter = (await linkIn(h.h1, 'l2tpeth0'))!;
      assert.equal(tapAfter.ifindex, tapBefore.ifindex, 'same TAP device');
      assert.equal(tapAfter.master, 'kdbr', 'still a bridge port');
      assert.equal((await linkIn('kdrp1', 'eth0'))!.ifindex, podBefore.ifindex, 'pod link untouched');

      const { out, received } = await pinged;
      const seqs = [...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
      console.log(
        `restart: ${COUNT - received} of ${COUNT} packets lost (${(((COUNT - received) / COUNT) * 100).toFixed(1)}%), ` +
          `process down-to-ready ${gap} ms`,
      );
      assert.ok(received > 0 && received < COUNT, `some lost while down, some delivered: ${received}`);
      assert.ok(Math.max(...seqs) >= COUNT - 5, 'traffic flows again after the restart');

      assert.equal(await d1b.stop(), 0);
      assert.notEqual(
        (await inNsCapture(h.h1, 'ip', 'link', 'show', 'l2tpeth0')).code,
        0,
        'removed on SIGTERM',
      );
    } finally {
      await lab.cleanup();
    }
  });

  it('reports a session whose TAP was deleted from outside, and keeps the other sessions running', async () => {
    const lab = new Lab();
    try {
      const h = await twoHosts(lab, 'kdf', 71);
      const [c1, c2] = pairConfigs(h, { encap: 'udp', sessions: 2 });
      const d1 = await startDatapath(lab, h.h1, c1);
      await startDatapath(lab, h.h2, c2);
      await podOn(lab, h.h1, 'kdfp1', 'kdbr', 'l2tpeth1', '10.201.205.1/24', 1446);
      await podOn(lab, h.h2, 'kdfp2', 'kdbr', 'l2tpeth1', '10.201.205.2/24', 1446);
      await ipIn(h.h1, 'link', 'del', 'l2tpeth0');
      const fault = await d1.waitFor('datapath pump fault', 10000);
      assert.equal(fault.sessionId, 1001, 'the fault names the session');
      assert.equal(fault.fatal, false);
      assert.match(String(fault.message), /TAP/);
      assert.equal(
        await ping('kdfp1', '10.201.205.2', 3, ['-i', '0.2']),
        3,
        'the other session still forwards',
      );
      assert.equal(d1.child.exitCode, null);
      assert.equal(await d1.stop(), 0);
    } finally {
      await lab.cleanup();
    }
  });
});
