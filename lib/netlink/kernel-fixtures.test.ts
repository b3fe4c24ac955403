// Byte vectors captured from Debian's 6.1 kernel in the vm suite (test/fixtures/netlink): every
// request here was accepted (or refused with the errno shown) by the real kernel, and every reply is
// what it sent back. The encoders must reproduce the requests bit for bit; the decoders must read the
// replies.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from './codec.js';
import { NetlinkError } from './errors.js';
import { decodeFamily, encodeGetFamily, GENL_HDRLEN, GENL_ID_CTRL } from './genl.js';
import {
  decodeSession,
  decodeTunnel,
  encodeSessionCreate,
  encodeSessionDelete,
  encodeSessionGet,
  encodeTunnelCreate,
  encodeTunnelDelete,
  encodeTunnelGet,
  l2tpAttrName,
  L2TP_PWTYPE,
  L2tpNetlink,
} from './l2tp.js';
import {
  decodeLink,
  encodeIfinfo,
  encodeSetLink,
  IFINFO_LEN,
  RTM_GETLINK,
  RTM_NEWLINK,
  IFLA,
  RtnlLinks,
} from './rtnl.js';
import { loadExchanges, ReplayTransport } from '../../test/harness/netlink-fixtures.js';
import { decodeReplies, NetlinkSocket } from './socket.js';

const { ex, req, replies, hdr, framed } = loadExchanges('kernel-6.1-l2tp.json');
const L2TP_ID = 0x20;
const l2tpOpts = { op: 'test', familyHeaderLen: GENL_HDRLEN, attrName: l2tpAttrName };

describe('l2tp encoders reproduce requests the 6.1 kernel accepted', () => {
  it('nlctrl GETFAMILY l2tp', () => {
    assert.equal(hdr('getfamily-l2tp').type, GENL_ID_CTRL);
    assert.equal(framed('getfamily-l2tp', encodeGetFamily('l2tp')), ex('getfamily-l2tp').request);
  });

  it('TUNNEL_CREATE, UDP over IPv4 (unmanaged: no FD)', () => {
    const p = encodeTunnelCreate({
      tunnelId: 100,
      peerTunnelId: 200,
      encap: 'udp',
      local: '10.203.0.2',
      remote: '10.203.0.1',
      udpSourcePort: 17001,
      udpDestinationPort: 17002,
      udpChecksum: false,
    });
    assert.equal(hdr('tunnel-create-udp').flags, NLM_F_REQUEST | NLM_F_ACK);
    assert.equal(framed('tunnel-create-udp', p), ex('tunnel-create-udp').request);
  });

  it('TUNNEL_CREATE, IP encapsulation', () => {
    const p = encodeTunnelCreate({
      tunnelId: 101,
      peerTunnelId: 201,
      encap: 'ip',
      local: '10.203.0.2',
      remote: '10.203.0.1',
    });
    assert.equal(framed('tunnel-create-ip', p), ex('tunnel-create-ip').request);
  });

  it('SESSION_CREATE, ETH pseudowire with default sublayer and a name', () => {
    const p = encodeSessionCreate({
      tunnelId: 100,
      sessionId: 1001,
      peerSessionId: 2001,
      ifname: 'kl2tp-udp',
      l2specType: 'default',
    });
    assert.equal(
      framed('session-create-udp-default-l2spec', p),
      ex('session-create-udp-default-l2spec').request,
    );
  });

  it('SESSION_CREATE, sublayer none', () => {
    const p = encodeSessionCreate({
      tunnelId: 101,
      sessionId: 1002,
      peerSessionId: 2002,
      ifname: 'kl2tp-ip',
      l2specType: 'none',
    });
    assert.equal(framed('session-create-ip-l2spec-none', p), ex('session-create-ip-l2spec-none').request);
  });

  it('SESSION_CREATE with an 8-byte cookie and a 4-byte peer cookie', () => {
    const p = encodeSessionCreate({
      tunnelId: 102,
      sessionId: 1003,
      peerSessionId: 2003,
      ifname: 'kl2tp-ck',
      l2specType: 'default',
      cookie: Buffer.from('0102030405060708', 'hex'),
      peerCookie: Buffer.from('a1b2c3d4', 'hex'),
    });
    assert.equal(framed('session-create-cookies', p), ex('session-create-cookies').request);
  });

  it('GET (single and dump), DELETE', () => {
    assert.equal(framed('session-get-udp', encodeSessionGet(100, 1001)), ex('session-get-udp').request);
    assert.equal(hdr('session-dump-with-stats').flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP);
    assert.equal(
      framed('session-dump-with-stats', encodeSessionGet()),
      ex('session-dump-with-stats').request,
    );
    assert.equal(framed('tunnel-dump', encodeTunnelGet()), ex('tunnel-dump').request);
    assert.equal(
      framed('tunnel-get-missing-enodev', encodeTunnelGet(100)),
      ex('tunnel-get-missing-enodev').request,
    );
    const del = req('tunnel-delete');
    assert.equal(
      framed('tunnel-delete', encodeTunnelDelete(del.readUInt32LE(24))),
      ex('tunnel-delete').request,
    );
    assert.equal(
      framed('session-delete-missing-enodev', encodeSessionDelete(100, 0x7ffffff0)),
      ex('session-delete-missing-enodev').request,
    );
  });

  it('rtnetlink: GETLINK by name, dump, and set MTU + ifalias + up', () => {
    assert.equal(
      framed('rtnl-getlink-by-name', encodeIfinfo(0, 0, 0, [{ type: IFLA.IFNAME, str: 'kl2tp-udp' }])),
      ex('rtnl-getlink-by-name').request,
    );
    assert.equal(framed('rtnl-getlink-dump', encodeIfinfo(0, 0, 0, [])), ex('rtnl-getlink-dump').request);
    assert.equal(
      framed('rtnl-setlink-mtu-alias-up', encodeSetLink(5, { mtu: 1446, alias: 'kube-l2tp', up: true })),
      ex('rtnl-setlink-mtu-alias-up').request,
    );
  });
});

describe('decoders read replies captured from the 6.1 kernel', () => {
  it('family resolution: id, version, multicast group', () => {
    const [m] = decodeReplies(
      req('getfamily-l2tp'),
      hdr('getfamily-l2tp').seq,
      replies('getfamily-l2tp'),
      l2tpOpts,
    );
    const f = decodeFamily(m!);
    assert.deepEqual([f.name, f.id, f.version], ['l2tp', L2TP_ID, 1]);
    assert.equal(typeof f.mcastGroups.l2tp, 'number');
  });

  it('SESSION_GET of one session: IDs, ETH type, name, cookies', () => {
    const [a] = decodeReplies(
      req('session-get-udp'),
      hdr('session-get-udp').seq,
      replies('session-get-udp'),
      l2tpOpts,
    );
    const s = decodeSession(a!);
    assert.deepEqual(
      [s.tunnelId, s.sessionId, s.peerTunnelId, s.peerSessionId, s.pwType, s.ifname],
      [100, 1001, 200, 2001, L2TP_PWTYPE.ETH, 'kl2tp-udp'],
    );
    assert.equal(s.cookie, undefined);
    assert.equal(s.sendSequence, false);
    assert.equal(s.requireSequence, false);
    assert.ok(s.stats);
    const [b] = decodeReplies(
      req('session-get-cookies'),
      hdr('session-get-cookies').seq,
      replies('session-get-cookies'),
      l2tpOpts,
    );
    const c = decodeSession(b!);
    assert.equal(c.cookie?.toString('hex'), '0102030405060708');
    assert.equal(c.peerCookie?.toString('hex'), 'a1b2c3d4');
  });

  it('session dump (multipart, with per-session statistics after traffic)', () => {
    const msgs = decodeReplies(
      req('session-dump-with-stats'),
      hdr('session-dump-with-stats').seq,
      replies('session-dump-with-stats'),
      l2tpOpts,
    );
    const ss = msgs.map(decodeSession);
    assert.deepEqual(
      ss.map((s) => [s.tunnelId, s.sessionId, s.ifname]),
      [
        [100, 1001, 'kl2tp-udp'],
        [101, 1002, 'kl2tp-ip'],
        [102, 1003, 'kl2tp-ck'],
      ],
    );
    for (const s of ss) {
      assert.ok(s.stats!.txPackets > 0n && s.stats!.rxPackets > 0n, `${s.ifname} carried traffic`);
      assert.ok(s.stats!.rxBytes > s.stats!.rxPackets);
    }
  });

  it('tunnel dump: addresses, encapsulation, ports, checksum', () => {
    const ts = decodeReplies(
      req('tunnel-dump'),
      hdr('tunnel-dump').seq,
      replies('tunnel-dump'),
      l2tpOpts,
    ).map(decodeTunnel);
    assert.deepEqual(ts[0], {
      tunnelId: 100,
      peerTunnelId: 200,
      protoVersion: 3,
      encap: 'udp',
      local: '10.203.0.2',
      remote: '10.203.0.1',
      udpSourcePort: 17001,
      udpDestinationPort: 17002,
      udpChecksum: false,
      stats: ts[0]!.stats,
    });
    assert.deepEqual(
      [ts[1]!.tunnelId, ts[1]!.encap, ts[1]!.local, ts[1]!.udpSourcePort],
      [101, 'ip', '10.203.0.2', undefined],
    );
    assert.equal(ts.length, 3);
  });

  it('a tunnel made by iproute2 decodes the same way', () => {
    const [m] = decodeReplies(
      req('tunnel-get-foreign-iproute2'),
      hdr('tunnel-get-foreign-iproute2').seq,
      replies('tunnel-get-foreign-iproute2'),
      l2tpOpts,
    );
    const t = decodeTunnel(m!);
    assert.deepEqual(
      [t.tunnelId, t.peerTunnelId, t.local, t.udpSourcePort, t.udpDestinationPort],
      [4343, 1, '127.0.0.1', 40001, 40002],
    );
  });

  it('rtnetlink link: name, MTU, alias, up; a dump lists every link', () => {
    const [m] = decodeReplies(
      req('rtnl-getlink-by-name'),
      hdr('rtnl-getlink-by-name').seq,
      replies('rtnl-getlink-by-name'),
      {
        op: 't',
        familyHeaderLen: IFINFO_LEN,
      },
    );
    const l = decodeLink(m!);
    assert.deepEqual([l.name, l.index, l.up], ['kl2tp-udp', 5, false]);
    assert.ok(l.mtu! > 1000);
    assert.match(l.address!, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const all = decodeReplies(
      req('rtnl-getlink-dump'),
      hdr('rtnl-getlink-dump').seq,
      replies('rtnl-getlink-dump'),
      {
        op: 't',
        familyHeaderLen: IFINFO_LEN,
      },
    )
      .filter((x) => x.type === RTM_NEWLINK)
      .map((m) => decodeLink(m));
    const names = all.map((x) => x.name);
    for (const n of ['lo', 'eth0', 'kl2tp-udp', 'kl2tp-ip', 'kl2tp-ck']) assert.ok(names.includes(n), n);
    const ck = all.find((x) => x.name === 'kl2tp-ck')!;
    assert.deepEqual([ck.alias, ck.up, ck.mtu], ['kube-l2tp', true, 1438]);
    assert.ok(ck.stats!.txPackets > 0n);
  });

  it('kernel errors become NetlinkError with errno name and the IDs of the request', () => {
    const cases: [string, string, Record<string, number>][] = [
      ['tunnel-create-eexist', 'EEXIST', { tunnelId: 100 }],
      ['session-create-eexist-other-tunnel', 'EEXIST', { tunnelId: 101, sessionId: 1001 }],
      ['session-create-enodev-no-tunnel', 'ENODEV', { tunnelId: 424242, sessionId: 5 }],
      ['session-create-ppp-eprotonosupport', 'EPROTONOSUPPORT', { tunnelId: 100, sessionId: 4040 }],
      ['session-delete-missing-enodev', 'ENODEV', { tunnelId: 100 }],
      ['tunnel-get-missing-enodev', 'ENODEV', { tunnelId: 100 }],
      ['rtnl-getlink-by-name-missing-enodev', 'ENODEV', {}],
    ];
    for (const [name, code, ids] of cases) {
      assert.throws(
        () => decodeReplies(req(name), hdr(name).seq, replies(name), { ...l2tpOpts, op: name, context: ids }),
        (e: unknown) => {
          assert.ok(e instanceof NetlinkError, name);
          assert.equal(e.code, code, name);
          for (const [k, v] of Object.entries(ids))
            assert.equal((e as unknown as Record<string, number>)[k], v, `${name} ${k}`);
          assert.match(e.message, new RegExp(`${name} failed: ${code}`));
          return true;
        },
      );
    }
  });

  it('an extended ACK names the attribute at fault and carries the kernel message', () => {
    const name = 'tunnel-create-bad-attr-extack';
    assert.throws(
      () =>
        decodeReplies(req(name), hdr(name).seq, replies(name), {
          ...l2tpOpts,
          op: 'l2tp TUNNEL_CREATE',
          context: { tunnelId: 5 },
        }),
      (e: unknown) =>
        e instanceof NetlinkError &&
        e.code === 'ERANGE' &&
        e.attribute === 'L2TP_ATTR_CONN_ID' &&
        e.kernelMessage === 'Attribute failed policy validation' &&
        e.tunnelId === 5,
    );
  });

  it('ignores replies with another sequence number (stale answers)', () => {
    const r = replies('session-get-udp');
    assert.deepEqual(decodeReplies(req('session-get-udp'), 12345, r, l2tpOpts), []);
  });
});

/** Replays captured replies for whatever request comes, rewriting their sequence numbers. */
describe('NetlinkSocket over a replayed kernel', () => {
  it('resolves the family, dumps sessions, maps errors', async () => {
    const t = new ReplayTransport([
      ex('getfamily-l2tp'),
      ex('session-dump-with-stats'),
      ex('tunnel-create-eexist'),
    ]);
    const l2tp = await L2tpNetlink.open(new NetlinkSocket(t));
    assert.equal(l2tp.family.id, L2TP_ID);
    const ss = await l2tp.dumpSessions();
    assert.equal(ss.length, 3);
    assert.equal(t.sent[1]!.readUInt16LE(4), L2TP_ID);
    await assert.rejects(
      l2tp.createTunnel({
        tunnelId: 100,
        peerTunnelId: 9,
        encap: 'udp',
        local: '127.0.0.1',
        remote: '127.0.0.1',
        udpSourcePort: 0,
        udpDestinationPort: 9,
      }),
      (e: unknown) =>
        e instanceof NetlinkError &&
        e.code === 'EEXIST' &&
        e.tunnelId === 100 &&
        e.op === 'l2tp TUNNEL_CREATE',
    );
  });

  it('rtnetlink byName returns undefined for ENODEV', async () => {
    const links = new RtnlLinks(
      new NetlinkSocket(new ReplayTransport([ex('rtnl-getlink-by-name-missing-enodev')])),
    );
    assert.equal(await links.byName('kl2tp-udp'), undefined);
    assert.equal(RTM_GETLINK, 18);
  });
});
