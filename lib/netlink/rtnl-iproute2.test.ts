// rtnetlink encoders against what iproute2 (6.1) sends for the same commands: each fixture below is
// the request `ip` wrote to its netlink socket (captured with strace -e write=FD), the command in the
// title. Requests go through a NetlinkSocket over a capturing transport, so the nlmsghdr type and
// flags are compared too. Two normalisations: the sequence number is zeroed, and NLA_F_NESTED is
// cleared (iproute2 does not set it on IFLA_LINKINFO / IFLA_INFO_DATA; the kernel accepts both).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  encodeMessage,
  NLA_F_NESTED,
  NLM_F_CAPPED,
  NLM_F_MULTI,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  parseAttrs,
  parseMessages,
} from './codec.js';
import {
  AF_INET,
  AF_INET6,
  decodeAddr,
  encodeNewAddr,
  IFADDR_LEN,
  parsePrefix,
  RtnlAddrs,
} from './rtnl-addr.js';
import { encodeNewRoute, RT_SCOPE_LINK, RTMSG_LEN, RtnlRoutes } from './rtnl-route.js';
import {
  DELETE_GROUP,
  encodeIfinfo,
  encodeNewVeth,
  IFINFO_LEN,
  IFLA,
  macBytes,
  RTM_DELLINK,
  RTM_GETLINK,
  RTM_NEWLINK,
  RtnlLinks,
} from './rtnl.js';
import { NetlinkSocket, type Transport } from './socket.js';

/** Records requests and ACKs each one. */
class Capture implements Transport {
  readonly sent: Buffer[] = [];
  transact(req: Buffer): Promise<Buffer[]> {
    this.sent.push(req);
    const p = Buffer.alloc(4 + NLMSG_HDRLEN);
    req.copy(p, 4, 0, NLMSG_HDRLEN);
    const seq = req.readUInt32LE(8);
    return Promise.resolve([encodeMessage({ type: NLMSG_ERROR, flags: NLM_F_CAPPED, seq, pid: 0 }, p)]);
  }
  close(): void {}
}

function clearNested(buf: Buffer): void {
  for (const a of parseAttrs(buf)) {
    const t = buf.readUInt16LE(a.offset + 2);
    if (t & NLA_F_NESTED) {
      buf.writeUInt16LE(t & ~NLA_F_NESTED, a.offset + 2);
      clearNested(a.value);
    }
  }
}

/** The request, seq zeroed and nested flags cleared, as hex. */
function normal(req: Buffer, familyHeaderLen: number): string {
  const b = Buffer.from(req);
  b.writeUInt32LE(0, 8);
  clearNested(b.subarray(NLMSG_HDRLEN + familyHeaderLen, b.readUInt32LE(0)));
  return b.toString('hex');
}
const fixture = (hex: string): string => {
  const b = Buffer.from(hex, 'hex');
  b.writeUInt32LE(0, 8);
  return b.toString('hex');
};

function rig() {
  const cap = new Capture();
  const sock = new NetlinkSocket(cap);
  return { cap, links: new RtnlLinks(sock), addrs: new RtnlAddrs(sock), routes: new RtnlRoutes(sock) };
}

describe('rtnetlink link requests match iproute2', () => {
  it('ip link add kntb0 mtu 1400 address 02:11:22:33:44:55 type bridge', async () => {
    const r = rig();
    await r.links.createBridge({ name: 'kntb0', mtu: 1400, address: '02:11:22:33:44:55' });
    assert.equal(
      normal(r.cap.sent[0]!, IFINFO_LEN),
      fixture(
        '5000000010000506515f056b000000000000000000000000000000000000000008000400780500000a000100' +
          '02112233445500000a0003006b6e746230000000100012000a0001006272696467650000',
      ),
    );
  });

  it('ip link add kq-a mtu 1400 numtxqueues 2 numrxqueues 2 type veth peer name kq-b mtu 1400 numtxqueues 2 numrxqueues 2', async () => {
    const r = rig();
    await r.links.createVeth({ name: 'kq-a', mtu: 1400, queues: 2 }, { name: 'kq-b', mtu: 1400, queues: 2 });
    assert.equal(
      normal(r.cap.sent[0]!, IFINFO_LEN),
      fixture(
        '8c0000001000050621cd0c6b0000000000000000000000000000000000000000080004007805000008001f00' +
          '020000000800200002000000090003006b712d61000000004800120008000100766574683c00020038000100' +
          '00000000000000000000000000000000080004007805000008001f00020000000800200002000000090003006b712d6200000000',
      ),
    );
  });

  it('ip link add kntv0 mtu 1400 address 02:11:22:33:44:66 type veth peer name kntp0 mtu 1400 netns NS', async () => {
    const r = rig();
    await r.links.createVeth(
      { name: 'kntv0', mtu: 1400, address: '02:11:22:33:44:66' },
      { name: 'kntp0', mtu: 1400, netnsFd: 4 }, // ip had the netns open as fd 4
    );
    assert.equal(
      normal(r.cap.sent[0]!, IFINFO_LEN),
      fixture(
        '8000000010000506345f056b000000000000000000000000000000000000000008000400780500000a000100' +
          '02112233446600000a0003006b6e747630000000400012000800010076657468340002003000010000000000' +
          '000000000000000000000000080004007805000008001c00040000000a0003006b6e747030000000',
      ),
    );
  });

  const sets: [string, number, Parameters<RtnlLinks['set']>[1], string][] = [
    [
      'ip link set dev kntv0 master kntb0 up',
      3,
      { master: 2, up: true },
      '2800000010000500345f056b000000000000000003000000010000000100000008000a0002000000',
    ],
    [
      'ip link set dev kntv0 nomaster',
      4,
      { master: 0 },
      '2800000010000500515f056b000000000000000004000000000000000000000008000a0000000000',
    ],
    [
      'ip link set dev kntp0 netns NS (fd 4)',
      3,
      { netnsFd: 4 },
      '2800000010000500515f056b000000000000000003000000000000000000000008001c0004000000',
    ],
    [
      'ip link set dev kntp0 name knt9',
      3,
      { name: 'knt9' },
      '2c00000010000500515f056b0000000000000000030000000000000000000000090003006b6e743900000000',
    ],
    [
      'ip link set dev knt9 mtu 1300 address 02:11:22:33:44:77 up',
      3,
      { mtu: 1300, address: '02:11:22:33:44:77', up: true },
      '3400000010000500525f056b000000000000000003000000010000000100000008000400140500000a000100' +
        '0211223344770000',
    ],
    [
      'ip link set dev knt9 down',
      3,
      { up: false },
      '2000000010000500515f056b0000000000000000030000000000000001000000',
    ],
    [
      'ip link set dev knt9 netns 1',
      3,
      { netnsPid: 1 },
      '2800000010000500515f056b00000000000000000300000000000000000000000800130001000000',
    ],
    [
      'ip link set dev sbg0 group 7340032 (ifindex 1002)',
      1002,
      { group: 7340032 },
      '28000000100005008c8a0b6b0000000000000000ea03000000000000000000000800' + '1b0000007000',
    ],
  ];
  for (const [cmd, index, change, hex] of sets) {
    it(cmd, async () => {
      const r = rig();
      await r.links.set(index, change);
      assert.equal(normal(r.cap.sent[0]!, IFINFO_LEN), fixture(hex));
    });
  }

  it('ip link del dev kntv0 (by ifindex 3)', async () => {
    const r = rig();
    await r.links.del(3);
    assert.equal(
      normal(r.cap.sent[0]!, IFINFO_LEN),
      fixture('2000000011000500345f056b0000000000000000030000000000000000000000'),
    );
  });

  it('ip link del group 7340032', async () => {
    const r = rig();
    await r.links.delGroup(7340032);
    assert.equal(
      normal(r.cap.sent[0]!, IFINFO_LEN),
      fixture('28000000110005008c8a0b6b000000000000000000000000000000000000000008001b0000007000'),
    );
  });
});

/**
 * Answers like the kernel would for delMany: ACKs sets and deletes, and answers a link dump with
 * `links` (index and group each).
 */
class Scripted implements Transport {
  readonly sent: { type: number; index: number; group?: number }[] = [];
  constructor(private readonly links: { index: number; group: number }[]) {}
  transact(req: Buffer): Promise<Buffer[]> {
    const type = req.readUInt16LE(4);
    const seq = req.readUInt32LE(8);
    const body = req.subarray(NLMSG_HDRLEN, req.readUInt32LE(0));
    const group = parseAttrs(body.subarray(IFINFO_LEN)).find((a) => a.type === IFLA.GROUP);
    this.sent.push({
      type,
      index: body.readInt32LE(4),
      ...(group ? { group: group.value.readUInt32LE(0) } : {}),
    });
    if (type === RTM_GETLINK) {
      const msgs = this.links.map((l) =>
        encodeMessage(
          { type: RTM_NEWLINK, flags: NLM_F_MULTI, seq, pid: 0 },
          encodeIfinfo(l.index, 0, 0, [
            { type: IFLA.IFNAME, str: `sbl${l.index}` },
            { type: IFLA.GROUP, u32: l.group },
          ]),
        ),
      );
      msgs.push(encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq, pid: 0 }, Buffer.alloc(4)));
      return Promise.resolve([Buffer.concat(msgs)]);
    }
    const p = Buffer.alloc(4 + NLMSG_HDRLEN);
    req.copy(p, 4, 0, NLMSG_HDRLEN);
    return Promise.resolve([encodeMessage({ type: NLMSG_ERROR, flags: NLM_F_CAPPED, seq, pid: 0 }, p)]);
  }
  close(): void {}
}

describe('delMany', () => {
  it('puts the links in the delete group and deletes the group in one request', async () => {
    const t = new Scripted([
      { index: 1, group: 0 },
      { index: 7, group: DELETE_GROUP },
      { index: 8, group: DELETE_GROUP },
    ]);
    const r = await new RtnlLinks(new NetlinkSocket(t)).delMany([7, 8]);
    assert.deepEqual(r, { deleted: 2, batched: true });
    assert.deepEqual(t.sent, [
      { type: RTM_NEWLINK, index: 7, group: DELETE_GROUP },
      { type: RTM_NEWLINK, index: 8, group: DELETE_GROUP },
      { type: RTM_GETLINK, index: 0 },
      { type: RTM_DELLINK, index: 0, group: DELETE_GROUP },
    ]);
  });

  it('deletes link by link, never the group, when the group holds a link it was not given', async () => {
    const t = new Scripted([
      { index: 7, group: DELETE_GROUP },
      { index: 8, group: DELETE_GROUP },
      { index: 9, group: DELETE_GROUP }, // someone else's
    ]);
    const r = await new RtnlLinks(new NetlinkSocket(t)).delMany([7, 8]);
    assert.deepEqual(r, { deleted: 2, batched: false });
    assert.deepEqual(
      t.sent.filter((m) => m.type === RTM_DELLINK),
      [
        { type: RTM_DELLINK, index: 7 },
        { type: RTM_DELLINK, index: 8 },
      ],
    );
  });
});

describe('rtnetlink address and route requests match iproute2', () => {
  it('ip addr add 10.1.2.3/24 dev kntp0 (ifindex 2)', async () => {
    const r = rig();
    await r.addrs.add(2, '10.1.2.3/24');
    assert.equal(
      normal(r.cap.sent[0]!, IFADDR_LEN),
      fixture('2800000014000506345f056b000000000218000002000000080002000a010203080001000a010203'),
    );
  });

  it('ip addr add fd00::2/64 dev kntp0 nodad', async () => {
    const r = rig();
    await r.addrs.add(2, 'fd00::2/64', { nodad: true });
    assert.equal(
      normal(r.cap.sent[0]!, IFADDR_LEN),
      fixture(
        '4000000014000506345f056b000000000a4002000200000014000200fd00000000000000000000000000000214' +
          '000100fd000000000000000000000000000002',
      ),
    );
  });

  it('ip route add 10.9.0.0/16 via 10.1.2.1 dev kntp0 metric 5 mtu 1300 advmss 1200', async () => {
    const r = rig();
    await r.routes.add({
      dst: '10.9.0.0/16',
      gateway: '10.1.2.1',
      oif: 2,
      priority: 5,
      mtu: 1300,
      advmss: 1200,
    });
    assert.equal(
      normal(r.cap.sent[0]!, RTMSG_LEN),
      fixture(
        '5000000018000506345f056b0000000002100000fe03000100000000080001000a090000080005000a010201' +
          '0800060005000000080004000200000014000800080002001405000008000800b0040000',
      ),
    );
  });

  it('ip route add 10.8.0.0/16 dev kntp0 (no gateway: scope link)', async () => {
    const r = rig();
    await r.routes.add({ dst: '10.8.0.0/16', oif: 2 });
    assert.equal(
      normal(r.cap.sent[0]!, RTMSG_LEN),
      fixture('2c00000018000506345f056b0000000002100000fe03fd0100000000080001000a0800000800040002000000'),
    );
  });
});

describe('rtnetlink encoders: what iproute2 was not asked for', () => {
  it('a veth made up, enslaved, and its peer named with a MAC in another netns', () => {
    const p = encodeNewVeth(
      { name: 'kl2h0', mtu: 1400, address: '02:00:00:00:00:01', master: 7, up: true },
      { name: 'net1', mtu: 1400, address: '02:00:00:00:00:02', netnsFd: 9 },
    );
    assert.equal(p.readUInt32LE(8), 1, 'IFF_UP in ifi_flags');
    assert.equal(p.readUInt32LE(12), 1, 'IFF_UP in ifi_change');
    const attrs = parseAttrs(p.subarray(IFINFO_LEN));
    assert.deepEqual(
      attrs.map((a) => a.type),
      [IFLA.MTU, IFLA.ADDRESS, IFLA.IFNAME, IFLA.MASTER, IFLA.LINKINFO],
    );
    assert.equal(attrs[3]!.value.readUInt32LE(0), 7);
    const info = parseAttrs(attrs[4]!.value);
    assert.equal(info[0]!.value.toString(), 'veth');
    const peerAttr = parseAttrs(info[1]!.value)[0]!;
    assert.equal(peerAttr.type, 1, 'VETH_INFO_PEER');
    assert.equal(peerAttr.nested, false, 'the peer is an ifinfomsg blob, not nested attributes');
    const peer = peerAttr.value;
    assert.equal(peer.readUInt32LE(8), 0, 'the peer is not brought up at creation (ENOTCONN)');
    const pa = parseAttrs(peer.subarray(IFINFO_LEN));
    assert.deepEqual(
      pa.map((a) => a.type),
      [IFLA.MTU, IFLA.ADDRESS, IFLA.NET_NS_FD, IFLA.IFNAME],
    );
    assert.equal(pa[1]!.value.toString('hex'), '020000000002');
    assert.equal(pa[2]!.value.readUInt32LE(0), 9);
    assert.equal(pa[3]!.value.toString(), 'net1\0');
  });

  it('routes: table above 255 goes in RTA_TABLE; /0 has no RTA_DST; IPv6 without gateway is universe', () => {
    const t = encodeNewRoute({ dst: '0.0.0.0/0', gateway: '10.0.0.1', oif: 3, table: 1000, scope: 0 });
    assert.equal(t.readUInt8(1), 0, 'dst_len');
    assert.equal(t.readUInt8(4), 0, 'rtm_table RT_TABLE_UNSPEC');
    assert.deepEqual(
      parseAttrs(t.subarray(RTMSG_LEN)).map((a) => [a.type, a.value.readUInt32LE(0)]),
      [
        [5, 0x0100000a],
        [4, 3],
        [15, 1000],
      ],
    );
    const six = encodeNewRoute({ dst: 'fd00:1::/48', oif: 3 });
    assert.equal(six.readUInt8(0), AF_INET6);
    assert.equal(six.readUInt8(1), 48);
    assert.equal(six.readUInt8(6), 0, 'scope universe');
    const explicit = encodeNewRoute({ dst: '10.0.0.0/8', gateway: '10.0.0.1', oif: 3, scope: RT_SCOPE_LINK });
    assert.equal(explicit.readUInt8(6), RT_SCOPE_LINK);
    assert.throws(() => encodeNewRoute({ dst: '10.0.0.0/8', gateway: 'fd00::1', oif: 3 }), /family/);
  });

  it('parses prefixes and refuses bad ones', () => {
    assert.deepEqual(parsePrefix('10.1.2.3/24'), {
      family: AF_INET,
      addr: Buffer.from([10, 1, 2, 3]),
      prefixlen: 24,
    });
    assert.equal(parsePrefix('fd00::1').prefixlen, 128);
    assert.equal(parsePrefix('::ffff:10.0.0.1/96').addr.toString('hex'), '00000000000000000000ffff0a000001');
    for (const bad of ['10.1.2.3/33', '10.1.2/24', 'fd00::1/129', '10.0.0.1/', 'x/8']) {
      assert.throws(() => parsePrefix(bad), Error, bad);
    }
    assert.throws(() => encodeNewAddr(1, 'nope/8'));
    assert.throws(() => macBytes('02:00:00:00:00'), /MAC/);
  });

  it('decodes an address reply (RTM_NEWADDR, IFA_FLAGS overriding the u8 flags)', () => {
    // as the kernel sends it for `ip addr add fd00::2/64 dev X nodad` on ifindex 2 (an RTM_GETADDR dump)
    const payload = Buffer.concat([
      Buffer.from('0a40800002000000', 'hex'),
      Buffer.from('14000100fd000000000000000000000000000002', 'hex'),
      Buffer.from('1400060000000000ffffffffffffffff00000000', 'hex'),
      Buffer.from('0800080082000000', 'hex'),
    ]);
    const msg = parseMessages(encodeMessage({ type: 20, flags: 2, seq: 1, pid: 0 }, payload))[0]!;
    assert.deepEqual(decodeAddr(msg), {
      family: AF_INET6,
      index: 2,
      prefixlen: 64,
      scope: 0,
      flags: 0x82,
      local: 'fd00::2',
    });
  });
});
