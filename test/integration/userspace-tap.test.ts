// The userspace backend's session TAPs against the real kernel. A TAP is persistent (it outlives the
// agent, so a restarted one reattaches) only once it carries its marker: a TAP the agent made and had
// not marked yet goes with the agent's process when it is killed, instead of staying unmarked under
// the session's name, where the next agent would have to leave it alone as someone else's.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { inNs, inNsCapture, Lab, requireRoot } from '../harness/netns.js';

before(() => requireRoot());

const child = fileURLToPath(new URL('./userspace-tap-child.js', import.meta.url));

describe('userspace session TAPs', () => {
  it('a TAP becomes persistent marked and sized, and stays after the agent', async () => {
    const lab = new Lab();
    try {
      const ns = await lab.netns('sbtapmark');
      const out = JSON.parse(await inNs(ns, process.execPath, child, 'mark')) as Record<string, unknown>;
      const l = { owner: { tunnelId: 1, sessionId: 1 }, mtu: 1446 };
      assert.equal(out.state, 'Up');
      assert.deepEqual(out.atPersist, [l]);
      assert.deepEqual(out.afterClose, l);
    } finally {
      await lab.cleanup();
    }
  });

  it('an agent killed after making a TAP and before marking it leaves no TAP', async () => {
    const lab = new Lab();
    try {
      const ns = await lab.netns('sbtapkill');
      const r = await inNsCapture(ns, process.execPath, child, 'killed');
      assert.deepEqual(JSON.parse(r.stdout), { opened: { mtu: 1500 } }, 'the TAP existed, unmarked');
      const links = await inNsCapture(ns, 'ip', '-o', 'link', 'show');
      assert.doesNotMatch(links.stdout, /l2tpeth5/);
    } finally {
      await lab.cleanup();
    }
  });
});
