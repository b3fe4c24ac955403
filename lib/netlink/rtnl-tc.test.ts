// tc over rtnetlink against bytes from real programs: the requests iproute2 (6.1) writes for the same
// tc commands (captured with strace), and the exchanges the development host's kernel (6.18) had with
// lib/netlink (test/fixtures/netlink/kernel-6.18-tc.json, which lists how the namespace was set up).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadExchanges, ReplayTransport } from '../../test/harness/netlink-fixtures.js';
import { NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST } from './codec.js';
import { NetlinkError } from './errors.js';
import {
  decodeFilter,
  encodeBpfFilter,
  encodeClsact,
  encodeDelBpfFilter,
  encodeListFilters,
  ETH_P_ALL,
  hookParent,
  RTM_GETTFILTER,
  RTM_NEWTFILTER,
  RtnlTc,
  TCMSG_LEN,
  type FilterRef,
} from './rtnl-tc.js';
import { NetlinkSocket, decodeReplies } from './socket.js';

const { ex, hdr, framed, req, replies } = loadExchanges('kernel-6.18-tc.json');

/** A request's body (after the nlmsghdr), TCA_OPTIONS' nested flag cleared: iproute2 does not set it. */
function body(hex: string): string {
  const b = Buffer.from(hex, 'hex').subarray(16);
  for (let off = TCMSG_LEN; off + 4 <= b.length; off += (b.readUInt16LE(off) + 3) & ~3) {
    b.writeUInt16LE(b.readUInt16LE(off + 2) & ~NLA_F_NESTED, off + 2);
  }
  return b.toString('hex');
}
const flagsOf = (hex: string): number => Buffer.from(hex, 'hex').readUInt16LE(6);

// fixture namespace: tcc-a ifindex 3, tcc-b ifindex 2; the loader's fds in the capturing process
const A = 3;
const B = 2;
const FD = { rx: 0x12, txEgress: 0x13, txIngress: 0x14, txCfgMap: 0x1e };
const ours = (ifindex: number, hook: FilterRef['hook']): FilterRef => ({
  ifindex,
  hook,
  pref: 49225,
  handle: 1,
});

describe('tc requests match iproute2 6.1', () => {
  // `tc` resolves the name first and writes the ifindex (3 in its namespace): the bodies compare as is
  it('tc qdisc add dev X clsact', () => {
    const want =
      '3000000024000506cf960c6b0000000000000000030000000000fffff1ffffff000000000b000100636c736163740000';
    assert.equal(flagsOf(want), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    assert.equal(body(framed('clsact-add', encodeClsact(3))), body(want));
  });

  it('tc filter replace dev X ingress pref 49225 handle 1 bpf direct-action object-pinned PIN', () => {
    // tc's fd for the pinned program was 4, and it names the filter after the pin
    const want =
      '5c0000002c000504d0960c6b00000000000000000300000001000000f2ffffff000349c008000100627066003000020008000600040000001a00070070726f675f6c3274705f72783a5b2a66736f626a5d0000000800080001000000';
    assert.equal(flagsOf(want), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, 'replace is CREATE without EXCL');
    const got = encodeBpfFilter(ours(3, 'ingress'), 4, 'prog_l2tp_rx:[*fsobj]');
    assert.equal(body(framed('filter-ingress', got)), body(want));
  });

  it('tc filter replace dev X egress ... (the egress hook)', () => {
    const want =
      '640000002c000504d0960c6b00000000000000000300000001000000f3ffffff000349c008000100627066003800020008000600040000002100070070726f675f6c3274705f74785f6567726573733a5b2a66736f626a5d000000000800080001000000';
    const got = encodeBpfFilter(ours(3, 'egress'), 4, 'prog_l2tp_tx_egress:[*fsobj]');
    assert.equal(body(framed('filter-egress', got)), body(want));
  });

  it('tc filter del dev X ingress pref 49225 handle 1 bpf', () => {
    const want = '2c0000002d000500d0960c6b00000000000000000300000001000000f2ffffff000049c00800010062706600';
    assert.equal(flagsOf(want), NLM_F_REQUEST | NLM_F_ACK);
    assert.equal(body(framed('del', encodeDelBpfFilter(ours(3, 'ingress')))), body(want));
  });

  it('tc filter show dev X ingress pref 49225 (a dump of one preference)', () => {
    const want = '240000002e00010344970c6b00000000000000000300000000000000f2ffffff000049c0';
    assert.equal(flagsOf(want), NLM_F_REQUEST | NLM_F_DUMP);
    assert.equal(body(framed('list-ingress', encodeListFilters(3, 'ingress', 49225))), body(want));
  });

  it('hook parents are clsact:ingress and clsact:egress', () => {
    assert.equal(hookParent('ingress'), 0xfffffff2);
    assert.equal(hookParent('egress'), 0xfffffff3);
  });
});

describe('tc encoders reproduce requests the 6.18 kernel accepted', () => {
  const cases: [string, Buffer][] = [
    ['list-no-qdisc', encodeListFilters(A, 'ingress', 49225)],
    ['clsact-add', encodeClsact(A)],
    ['clsact-exists', encodeClsact(A)],
    ['filter-ingress', encodeBpfFilter(ours(A, 'ingress'), FD.rx, 'l2tp_rx')],
    ['filter-egress', encodeBpfFilter(ours(A, 'egress'), FD.txEgress, 'l2tp_tx_egress')],
    ['filter-ingress-replace', encodeBpfFilter(ours(A, 'ingress'), FD.txIngress, 'l2tp_tx_ingress')],
    ['del', encodeDelBpfFilter(ours(A, 'ingress'))],
    ['filter-no-qdisc', encodeBpfFilter(ours(B, 'ingress'), FD.rx, 'l2tp_rx')],
    ['filter-map-fd', encodeBpfFilter(ours(B, 'ingress'), FD.txCfgMap, 'tx_cfg')],
  ];
  for (const [name, payload] of cases) {
    it(ex(name).op, () => assert.equal(framed(name, payload), ex(name).request));
  }
});

describe('tc replies of the 6.18 kernel decode', () => {
  const listed = (name: string) =>
    decodeReplies(req(name), hdr(name).seq, replies(name), { op: name, familyHeaderLen: TCMSG_LEN }).map(
      decodeFilter,
    );

  it('a dump lists the preference itself (handle 0) and our filter with its program', () => {
    const [chain, f] = listed('list-ingress');
    assert.deepEqual(chain, {
      ifindex: A,
      handle: 0,
      parent: 0xfffffff2,
      pref: 49225,
      protocol: ETH_P_ALL,
      kind: 'bpf',
    });
    assert.deepEqual(f, {
      ifindex: A,
      handle: 1,
      parent: 0xfffffff2,
      pref: 49225,
      protocol: ETH_P_ALL,
      kind: 'bpf',
      bpf: { id: 104, name: 'l2tp_rx', flags: 1, tag: '947f437c15520f43' },
    });
  });

  it('a replace in place changes the program the dump reports', () => {
    const f = listed('list-ingress-replaced').find((x) => x.handle === 1);
    assert.equal(f?.bpf?.id, 103);
    assert.equal(f?.bpf?.name, 'l2tp_tx_ingress');
  });

  it('a hook without a qdisc, or without our filter, dumps nothing', () => {
    assert.deepEqual(listed('list-no-qdisc'), []);
    assert.deepEqual(listed('del-absent-look'), []);
  });

  it('a message too short for tcmsg is refused', () => {
    assert.throws(
      () => decodeFilter({ type: RTM_NEWTFILTER, flags: 0, seq: 0, pid: 0, payload: Buffer.alloc(8) }),
      /has no tcmsg/,
    );
  });
});

describe('RtnlTc against the 6.18 kernel (replayed)', () => {
  const tcOver = (...names: string[]) => {
    const t = new ReplayTransport(names.map(ex));
    return { tc: new RtnlTc(new NetlinkSocket(t)), sent: t.sent };
  };
  const bodies = (sent: Buffer[]) => sent.map((b) => b.subarray(16).toString('hex'));
  const fixtureBodies = (...names: string[]) => names.map((n) => req(n).subarray(16).toString('hex'));

  it('addClsact: true when added, false when the device has one', async () => {
    const { tc, sent } = tcOver('clsact-add', 'clsact-exists');
    assert.equal(await tc.addClsact(A), true);
    assert.equal(await tc.addClsact(A), false);
    assert.deepEqual(bodies(sent), fixtureBodies('clsact-add', 'clsact-exists'));
  });

  it('getBpfFilter finds our handle and reads its program id', async () => {
    const { tc } = tcOver('list-ingress', 'del-absent-look');
    assert.equal((await tc.getBpfFilter(ours(A, 'ingress')))?.bpf?.id, 104);
    assert.equal(await tc.getBpfFilter(ours(A, 'ingress')), undefined);
  });

  it('delBpfFilter looks, then deletes; absent is false and sends no delete', async () => {
    const { tc, sent } = tcOver('del-look', 'del', 'del-absent-look');
    assert.equal(await tc.delBpfFilter(ours(A, 'ingress')), true);
    assert.equal(await tc.delBpfFilter(ours(A, 'ingress')), false);
    assert.equal(sent.length, 3);
    assert.equal(sent[1]!.readUInt16LE(4), 45, 'RTM_DELTFILTER');
    assert.equal(sent[2]!.readUInt16LE(4), RTM_GETTFILTER);
  });

  it('replaceBpfFilter without clsact fails with the kernel message', async () => {
    const { tc } = tcOver('filter-no-qdisc');
    await assert.rejects(tc.replaceBpfFilter(ours(B, 'ingress'), FD.rx, 'l2tp_rx'), (e: unknown) => {
      assert.ok(e instanceof NetlinkError);
      assert.equal(e.code, 'EINVAL');
      assert.match(e.message, /Parent Qdisc doesn't exists/);
      assert.match(e.message, /ifindex 2/);
      return true;
    });
  });

  it('replaceBpfFilter with the fd of a map fails (EINVAL)', async () => {
    const { tc } = tcOver('filter-map-fd');
    await assert.rejects(tc.replaceBpfFilter(ours(B, 'ingress'), FD.txCfgMap, 'tx_cfg'), /EINVAL/);
  });
});
