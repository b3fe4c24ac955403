// tc over rtnetlink against bytes from real programs: the requests iproute2 (6.1) writes for the same
// tc commands (captured with strace), and the exchanges the development host's kernel (6.18) had with
// lib/netlink (test/fixtures/netlink/kernel-6.18-tc.json and, for shared blocks,
// kernel-6.18-tc-blocks.json; each lists how its namespace was set up).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadExchanges, ReplayTransport } from '../../test/harness/netlink-fixtures.js';
import {
  NLA_F_NESTED,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_ECHO,
  NLM_F_EXCL,
  NLM_F_REQUEST,
} from './codec.js';
import { NetlinkError } from './errors.js';
import {
  decodeFilter,
  decodeQdisc,
  encodeBpfFilter,
  encodeClsact,
  encodeDelBpfFilter,
  encodeDelClsact,
  encodeGetClsact,
  encodeListFilters,
  ETH_P_ALL,
  hookParent,
  RTM_GETTFILTER,
  RTM_NEWQDISC,
  RTM_NEWTFILTER,
  RtnlTc,
  TCM_IFINDEX_MAGIC_BLOCK,
  TCMSG_LEN,
  type ClsactHook,
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
const ours = (ifindex: number, hook: ClsactHook): FilterRef => ({
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
    assert.equal(
      body(framed('list-ingress', encodeListFilters({ ifindex: 3, hook: 'ingress' }, 49225))),
      body(want),
    );
  });

  it('tc qdisc add dev X ingress_block I egress_block E clsact', () => {
    const want =
      '400000002400050619c90c6b0000000000000000030000000000fffff1ffffff000000000b000100636c73616374000008000d00a30f000008000e00a10f0000';
    assert.equal(flagsOf(want), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    assert.equal(body(framed('clsact-add', encodeClsact(3, { ingress: 4003, egress: 4001 }))), body(want));
  });

  it('tc qdisc del dev X clsact', () => {
    const want =
      '300000002500050019c90c6b0000000000000000030000000000fffff1ffffff000000000b000100636c736163740000';
    assert.equal(flagsOf(want), NLM_F_REQUEST | NLM_F_ACK);
    assert.equal(body(framed('del', encodeDelClsact(3))), body(want));
  });

  it('tc filter replace|add block N pref 49225 handle 1 bpf direct-action object-pinned PIN', () => {
    const replace =
      '5c0000002c00050418c90c6b0000000000000000ffffffff01000000a10f0000000349c008000100627066003000020008000600040000001c0007006c3274705f74785f6567726573733a5b2a66736f626a5d000800080001000000';
    const add =
      '5c0000002c00050618c90c6b0000000000000000ffffffff01000000a10f0000000349c008000100627066003000020008000600040000001c0007006c3274705f74785f6567726573733a5b2a66736f626a5d000800080001000000';
    assert.equal(flagsOf(replace), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
    assert.equal(flagsOf(add), NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 'add is exclusive');
    const got = encodeBpfFilter({ block: 4001, pref: 49225, handle: 1 }, 4, 'l2tp_tx_egress:[*fsobj]');
    assert.equal(body(framed('filter-egress', got)), body(replace));
    assert.equal(body(add), body(replace), 'the same body');
  });

  it('tc filter show block N pref 49225', () => {
    const want = '240000002e0001031ac90c6b0000000000000000ffffffff00000000a10f0000000049c0';
    assert.equal(flagsOf(want), NLM_F_REQUEST | NLM_F_DUMP);
    assert.equal(body(framed('list-ingress', encodeListFilters({ block: 4001 }, 49225))), body(want));
  });

  it('hook parents are clsact:ingress and clsact:egress', () => {
    assert.equal(hookParent('ingress'), 0xfffffff2);
    assert.equal(hookParent('egress'), 0xfffffff3);
  });
});

describe('tc encoders reproduce requests the 6.18 kernel accepted', () => {
  const cases: [string, Buffer][] = [
    ['list-no-qdisc', encodeListFilters({ ifindex: A, hook: 'ingress' }, 49225)],
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

describe('shared blocks against the 6.18 kernel', () => {
  const fx = loadExchanges('kernel-6.18-tc-blocks.json');
  // fixture namespace: tcd-a ifindex 3, tcd-b ifindex 2, tcd-c ifindex 5 (never had a qdisc)
  const [DA, DB, DC] = [3, 2, 5];
  const E = 492251;
  const IDLE = 492250;
  const I = 492252;
  const blk = (block: number): FilterRef => ({ block, pref: 49225, handle: 1 });
  /** tcd-a's clsact qdisc as the kernel reports it: its hooks bound to the blocks. */
  const BOUND = {
    ifindex: DA,
    handle: 0xffff0000,
    parent: 0xfffffff1,
    kind: 'clsact',
    ingressBlock: IDLE,
    egressBlock: E,
  };
  const PROG = { txEgress: 0x13, txIngress: 0x14 };
  const tcOver = (...names: string[]) => {
    const t = new ReplayTransport(names.map(fx.ex));
    return { tc: new RtnlTc(new NetlinkSocket(t)), sent: t.sent };
  };

  describe('encoders reproduce the requests it accepted', () => {
    const cases: [string, Buffer][] = [
      ['get-none', encodeGetClsact(DC)],
      ['clsact-blocks', encodeClsact(DA, { ingress: IDLE, egress: E })],
      ['clsact-blocks-peer', encodeClsact(DB, { ingress: I, egress: IDLE })],
      ['get-blocks', encodeGetClsact(DA)],
      ['block-filter-add', encodeBpfFilter(blk(E), PROG.txEgress, 'l2tp_tx_egress')],
      ['block-list', encodeListFilters({ block: E }, 49225)],
      ['dev-list-shared', encodeListFilters({ ifindex: DA, hook: 'egress' }, 49225)],
      ['block-filter-replace', encodeBpfFilter(blk(E), PROG.txIngress, 'l2tp_tx_ingress')],
      ['del-clsact', encodeDelClsact(DA)],
    ];
    for (const [name, payload] of cases) {
      it(fx.ex(name).op, () => assert.equal(fx.framed(name, payload), fx.ex(name).request));
    }
  });

  it('a qdisc get reports the shared blocks a clsact qdisc binds, and none for its own', () => {
    const q = (name: string) =>
      decodeReplies(fx.req(name), fx.hdr(name).seq, fx.replies(name), {
        op: name,
        familyHeaderLen: TCMSG_LEN,
      })
        .filter((m) => m.type === RTM_NEWQDISC)
        .map(decodeQdisc);
    assert.deepEqual(q('get-blocks'), [BOUND]);
    assert.deepEqual(q('get-own'), [{ ifindex: DA, handle: 0xffff0000, parent: 0xfffffff1, kind: 'clsact' }]);
  });

  it("a block's filters, listed by the block or by a device hook bound to it, name the block", () => {
    for (const name of ['block-list', 'dev-list-shared']) {
      const [chain, f] = decodeReplies(fx.req(name), fx.hdr(name).seq, fx.replies(name), {
        op: name,
        familyHeaderLen: TCMSG_LEN,
      }).map(decodeFilter);
      assert.equal(chain?.handle, 0, name);
      assert.deepEqual(f, {
        ifindex: TCM_IFINDEX_MAGIC_BLOCK,
        handle: 1,
        parent: E,
        block: E,
        pref: 49225,
        protocol: ETH_P_ALL,
        kind: 'bpf',
        bpf: { id: 2044, name: 'l2tp_tx_egress', flags: 1, tag: '5bd94926b0f8c1f3' },
      });
    }
  });

  it('addClsact with blocks: true when added, false when the device has a qdisc there', async () => {
    const { tc } = tcOver('clsact-blocks', 'clsact-blocks-exists');
    assert.equal(await tc.addClsact(DA, { ingress: IDLE, egress: E }), true);
    assert.equal(await tc.addClsact(DA, { ingress: IDLE, egress: E }), false);
  });

  it('getClsact: the blocks, its own, none ever, none after removal', async () => {
    const { tc, sent } = tcOver('get-blocks', 'get-own', 'get-none', 'get-after-del');
    assert.deepEqual(await tc.getClsact(DA), BOUND);
    assert.equal((await tc.getClsact(DA))?.egressBlock, undefined);
    assert.equal(await tc.getClsact(DC), undefined);
    assert.equal(await tc.getClsact(DA), undefined);
    // without an echo the kernel sends the qdisc to listeners only, and the asker gets a bare ack
    assert.ok(sent.every((b) => b.readUInt16LE(6) & NLM_F_ECHO));
  });

  it('addBpfFilter on a block: true, then false when there; an unknown block fails with the kernel message', async () => {
    const { tc } = tcOver('block-filter-add', 'block-filter-add-exists', 'block-filter-no-block');
    assert.equal(await tc.addBpfFilter(blk(E), PROG.txEgress, 'l2tp_tx_egress'), true);
    assert.equal(await tc.addBpfFilter(blk(E), PROG.txEgress, 'l2tp_tx_egress'), false);
    await assert.rejects(tc.addBpfFilter(blk(E), PROG.txEgress, 'l2tp_tx_egress'), (e: unknown) => {
      assert.ok(e instanceof NetlinkError);
      assert.equal(e.code, 'EINVAL');
      assert.match(e.message, /block 492251/);
      assert.match(e.message, /Block of given index was not found/);
      return true;
    });
  });

  it('getBpfFilter on a block: the replaced program; nothing for an unknown block or one left by its last device', async () => {
    const { tc } = tcOver('block-list-replaced', 'block-list-absent', 'block-list-orphan');
    assert.equal((await tc.getBpfFilter(blk(E)))?.bpf?.name, 'l2tp_tx_ingress');
    assert.equal(await tc.getBpfFilter(blk(7)), undefined);
    assert.equal(await tc.getBpfFilter(blk(E)), undefined);
  });

  it("listQdiscs: every device's qdiscs with the blocks they bind (`tc qdisc show` asks the same)", async () => {
    const { tc, sent } = tcOver('qdisc-dump');
    const clsact = (await tc.listQdiscs()).filter((q) => q.kind === 'clsact');
    assert.deepEqual(
      clsact.map((q) => [q.ifindex, q.ingressBlock, q.egressBlock]),
      [
        [DB, I, IDLE],
        [DA, IDLE, E],
        [DC, undefined, undefined],
      ],
    );
    // iproute2 6.1's dump request: an empty tcmsg
    assert.equal(sent[0]!.subarray(16).toString('hex'), '00'.repeat(TCMSG_LEN));
    assert.equal(sent[0]!.readUInt16LE(6) & NLM_F_DUMP, NLM_F_DUMP);
  });

  it("listFilters at preference 0: every filter of the block, ours and another tool's", async () => {
    const { tc } = tcOver('block-list-all');
    const f = (await tc.listFilters({ block: E }, 0)).filter((x) => x.handle === 1);
    assert.deepEqual(
      f.map((x) => [x.pref, x.bpf?.name]),
      [
        [100, 'another'],
        [49225, 'l2tp_tx_egress'],
      ],
    );
  });

  it('delClsact: true when removed, false when there was none', async () => {
    const { tc } = tcOver('del-clsact', 'del-clsact-absent');
    assert.equal(await tc.delClsact(DA), true);
    assert.equal(await tc.delClsact(DA), false);
  });
});
