// The agent's orphan-bridge sweep on real links: in a network namespace of its own, attachment bridges
// of several kinds, then releaseOrphanBridges() run inside that namespace (as the agent runs it in the
// node's) with one pseudowire still carried. Only the marked bridge of a pseudowire that is gone and
// has no pod on it goes; its session device is released, not deleted; nothing else is touched.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../../lib/exec.js';
import { ipIn, Lab, requireRoot } from '../harness/netns.js';
import { repoRoot } from '../harness/vm.js';

const NS = 'bsw-node';

async function links(): Promise<Map<string, { master?: string; alias?: string }>> {
  const all = JSON.parse(await ipIn(NS, '-j', '-d', 'link', 'show')) as {
    ifname: string;
    master?: string;
    ifalias?: string;
  }[];
  return new Map(
    all.map((l) => [
      l.ifname,
      { ...(l.master ? { master: l.master } : {}), ...(l.ifalias ? { alias: l.ifalias } : {}) },
    ]),
  );
}

describe('releaseOrphanBridges on real links', () => {
  const lab = new Lab();
  let before_: Map<string, { master?: string; alias?: string }>;
  let after_: Map<string, { master?: string; alias?: string }>;

  before(async () => {
    requireRoot();
    await lab.netns(NS);
    const bridge = async (name: string, alias?: string) => {
      await ipIn(NS, 'link', 'add', name, 'type', 'bridge');
      if (alias) await ipIn(NS, 'link', 'set', name, 'alias', alias);
      await ipIn(NS, 'link', 'set', name, 'up');
    };
    // a pseudowire that left the node while its pods were torn down without an agent
    await bridge('kl2b901', 'kube-l2tp bridge=demo/gone');
    await ipIn(NS, 'tuntap', 'add', 'dev', 'l2tpeth901', 'mode', 'tap');
    await ipIn(NS, 'link', 'set', 'l2tpeth901', 'master', 'kl2b901', 'up');
    // a pseudowire the node still carries
    await bridge('kl2b902', 'kube-l2tp bridge=demo/kept');
    // gone, but a pod still hangs on it (its node-side veth)
    await bridge('kl2b903', 'kube-l2tp bridge=demo/busy');
    await ipIn(NS, 'link', 'add', 'kl2h0000000903', 'type', 'veth', 'peer', 'name', 'pod903');
    await ipIn(NS, 'link', 'set', 'kl2h0000000903', 'master', 'kl2b903', 'up');
    // a carried pseudowire's bridge under the name of a session it no longer has
    await bridge('kl2b906', 'kube-l2tp bridge=demo/moved');
    // not ours: a foreign marker, no marker at all, a bridge of another name
    await bridge('kl2b904', 'kube-l2tp bridge of someone else');
    await bridge('kl2b905');
    await bridge('br-other', 'kube-l2tp bridge=demo/gone');
    before_ = await links();
    const links_ = join(repoRoot(), 'dist/datapath/cni/links.js');
    const script = `const m = await import(${JSON.stringify(links_)}); await m.releaseOrphanBridges([{ pseudowire: { namespace: 'demo', name: 'kept' }, sessionId: 902 }, { pseudowire: { namespace: 'demo', name: 'moved' }, sessionId: 907 }]);`;
    await run('ip', ['netns', 'exec', NS, process.execPath, '--input-type=module', '-e', script]);
    after_ = await links();
  });

  after(() => lab.cleanup());

  it('the orphaned bridges go, and a session device stays, released from its bridge', () => {
    assert.ok(before_.has('kl2b901'));
    assert.equal(after_.has('kl2b901'), false);
    assert.ok(before_.has('kl2b906'));
    assert.equal(after_.has('kl2b906'), false, 'a bridge not named after the carried session goes');
    assert.equal(before_.get('l2tpeth901')?.master, 'kl2b901');
    assert.ok(after_.has('l2tpeth901'), 'the session device is not deleted');
    assert.equal(after_.get('l2tpeth901')?.master, undefined);
  });

  it('a carried pseudowire keeps its bridge; a bridge with a pod on it stays', () => {
    assert.ok(after_.has('kl2b902'));
    assert.ok(after_.has('kl2b903'));
    assert.equal(after_.get('kl2h0000000903')?.master, 'kl2b903');
  });

  it('bridges that are not ours are never touched', () => {
    for (const b of ['kl2b904', 'kl2b905', 'br-other']) assert.ok(after_.has(b), b);
  });
});
