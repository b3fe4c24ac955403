// RtnlLinks.delMany against the real kernel: many TAPs in a throwaway network namespace go in one
// RTM_DELLINK of an interface group, and devices it was not given stay, even when one of them sits in
// the very group it uses (then it deletes link by link). Needs root.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { run, runOk } from '../exec.js';
import { DELETE_GROUP, RtnlLinks } from './rtnl.js';
import { NETLINK_ROUTE, NetlinkSocket } from './socket.js';

const root = process.getuid?.() === 0;
const NS = `sbg${process.pid % 10000}`;
const MANY = 200;

describe('deleting many links at once', { skip: !root && 'needs root', concurrency: 1 }, () => {
  let sock: NetlinkSocket;
  let links: RtnlLinks;

  /** Creates TAPs named prefix0..prefix(n-1) with one `ip -batch`; returns name -> ifindex. */
  async function taps(prefix: string, n: number): Promise<Map<string, number>> {
    const cmds = Array.from({ length: n }, (_, i) => `tuntap add dev ${prefix}${i} mode tap`).join('\n');
    await run('ip', ['-n', NS, '-batch', '-'], { input: cmds + '\n' });
    const byName = new Map((await links.list()).map((l) => [l.name, l.index]));
    return new Map([...byName].filter(([name]) => name.startsWith(prefix)));
  }
  const names = async () => new Set((await links.list()).map((l) => l.name));

  before(async () => {
    await runOk('ip', ['netns', 'del', NS]);
    await run('ip', ['netns', 'add', NS]);
    sock = NetlinkSocket.openIn(NETLINK_ROUTE, `/run/netns/${NS}`);
    links = new RtnlLinks(sock);
  });

  after(async () => {
    sock?.close();
    await runOk('ip', ['netns', 'del', NS]);
  });

  it('deletes every given link in one group request and leaves the others', async () => {
    const mine = await taps('sbm', MANY);
    const other = await taps('sbo', 3);
    assert.equal(mine.size, MANY);
    const r = await links.delMany([...mine.values()]);
    assert.deepEqual(r, { deleted: MANY, batched: true });
    const left = await names();
    assert.deepEqual(
      [...mine.keys()].filter((n) => left.has(n)),
      [],
    );
    for (const n of other.keys()) assert.ok(left.has(n), `${n} was not given and must stay`);
    const kept = (await links.list()).filter((l) => l.name.startsWith('sbo'));
    assert.deepEqual(
      kept.map((l) => l.group),
      [0, 0, 0],
      'links not given keep their group',
    );
    await links.delMany([...other.values()]);
  });

  it('never deletes a foreign link that sits in the delete group', async () => {
    const mine = await taps('sbm', 20);
    const foreign = await taps('sbf', 1);
    await links.set(foreign.get('sbf0')!, { group: DELETE_GROUP });
    const r = await links.delMany([...mine.values()]);
    assert.deepEqual(r, { deleted: 20, batched: false });
    const left = await names();
    assert.ok(left.has('sbf0'), 'the foreign TAP in the group stays');
    assert.deepEqual(
      [...mine.keys()].filter((n) => left.has(n)),
      [],
    );
    await links.del(foreign.get('sbf0')!);
  });

  it('is fine with links that are already gone', async () => {
    const mine = await taps('sbm', 2);
    const [a, b] = [...mine.values()];
    await links.del(a!);
    assert.deepEqual(await links.delMany([a!, b!]), { deleted: 1, batched: true });
    assert.deepEqual(await links.delMany([a!, b!]), { deleted: 0, batched: false });
  });
});
