// Route, neighbour and link lookups against bytes from real programs: the requests iproute2 (6.1)
// writes for `ip route get DST from SRC` and `ip neigh get ADDR dev X` (captured with strace), and
// the exchanges the development host's kernel (6.18) had with lib/netlink in a network namespace
// (test/fixtures/netlink/kernel-6.18-rtnl-lookup.json, which lists how the namespace was set up).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadExchanges, ReplayTransport } from '../../test/harness/netlink-fixtures.js';
import { NLM_F_ACK, NLM_F_REQUEST, NLMSG_HDRLEN, parseMessages } from './codec.js';
import { NetlinkError } from './errors.js';
import { AF_INET, AF_INET6 } from './rtnl-addr.js';
import { decodeNeigh, encodeGetNeigh, NUD, RTM_GETNEIGH, RtnlNeighbours } from './rtnl-neigh.js';
import {
  decodeRoute,
  encodeGetRoute,
  RT_TABLE_MAIN,
  RTM_GETROUTE,
  RTN_LOCAL,
  RTN_UNICAST,
  RtnlRoutes,
} from './rtnl-route.js';
import { decodeLink, IF_OPER, RtnlLinks } from './rtnl.js';
import { NetlinkSocket } from './socket.js';

const { ex, hdr, framed, replies } = loadExchanges('kernel-6.18-rtnl-lookup.json');

/** iproute2's request with its header's flags and seq replaced (it asks for no ACK; we always do). */
function iproute2(hex: string): { flags: number; body: string } {
  const b = Buffer.from(hex, 'hex');
  const flags = b.readUInt16LE(6);
  b.writeUInt16LE(0, 6);
  b.writeUInt32LE(0, 8);
  return { flags, body: b.toString('hex') };
}
function ours(req: Buffer): { flags: number; body: string } {
  return iproute2(req.toString('hex'));
}

/** The first data message of a fixture's replies. */
const firstReply = (name: string) => parseMessages(replies(name)[0]!)[0]!;

describe('lookup requests match iproute2 6.1', () => {
  it('ip route get 10.246.1.2 from 10.246.1.1', () => {
    const want = iproute2(
      '2c0000001a00010057580b6b00000000022020000000000000100000080001000af60102080002000af60101',
    );
    assert.equal(want.flags, NLM_F_REQUEST);
    const got = ours(
      Buffer.from(framed('route-get-direct', encodeGetRoute('10.246.1.2', '10.246.1.1')), 'hex'),
    );
    assert.equal(got.flags, NLM_F_REQUEST | NLM_F_ACK, 'ours asks for an ACK: the reply then ends for sure');
    assert.equal(got.body, want.body);
  });

  it('ip -6 route get fd00:246::2 from fd00:246::1 (no RTM_F_LOOKUP_TABLE for IPv6)', () => {
    const want = iproute2(
      '440000001a00010031590b6b000000000a808000000000000000000014000100fd00024600000000000000000000000214000200fd000246000000000000000000000001',
    );
    const got = ours(
      Buffer.from(framed('route-get-v6', encodeGetRoute('fd00:246::2', 'fd00:246::1')), 'hex'),
    );
    assert.equal(got.body, want.body);
  });

  it('ip neigh get 10.246.1.2 dev om-a (ifindex 3)', () => {
    const want = iproute2('240000001e00010031590b6b00000000020000000300000000000000080001000af60102');
    const got = ours(Buffer.from(framed('neigh-get-permanent', encodeGetNeigh(3, '10.246.1.2')), 'hex'));
    assert.equal(got.body, want.body);
  });

  it('the requests the 6.18 kernel answered are the encoders’ output', () => {
    assert.equal(hdr('route-get-direct').type, RTM_GETROUTE);
    assert.equal(hdr('neigh-get-permanent').type, RTM_GETNEIGH);
    const cases: [string, Buffer][] = [
      ['route-get-direct', encodeGetRoute('10.246.1.2', '10.246.1.1')],
      ['route-get-via-gateway', encodeGetRoute('10.246.9.5', '10.246.1.1')],
      ['route-get-local', encodeGetRoute('10.246.1.1', '10.246.1.1')],
      ['route-get-unreachable', encodeGetRoute('10.99.0.1', '10.246.1.1')],
      ['route-get-v6', encodeGetRoute('fd00:246::2', 'fd00:246::1')],
      ['neigh-get-permanent', encodeGetNeigh(3, '10.246.1.2')],
      ['neigh-get-failed', encodeGetNeigh(3, '10.246.1.7')],
      ['neigh-get-missing', encodeGetNeigh(3, '10.246.1.99')],
    ];
    for (const [name, payload] of cases) assert.equal(framed(name, payload), ex(name).request, name);
  });

  it('refuses a source of another family', () => {
    assert.throws(() => encodeGetRoute('fd00::1', '10.0.0.1'), /not of the family/);
  });
});

describe('lookup replies of the 6.18 kernel decode', () => {
  it('routes: direct, via a gateway, local, IPv6', () => {
    assert.deepEqual(decodeRoute(firstReply('route-get-direct')), {
      family: AF_INET,
      type: RTN_UNICAST,
      table: RT_TABLE_MAIN,
      scope: 0,
      dst: '10.246.1.2',
      oif: 3,
    });
    assert.deepEqual(decodeRoute(firstReply('route-get-via-gateway')), {
      family: AF_INET,
      type: RTN_UNICAST,
      table: RT_TABLE_MAIN,
      scope: 0,
      dst: '10.246.9.5',
      oif: 3,
      gateway: '10.246.1.254',
    });
    assert.deepEqual(decodeRoute(firstReply('route-get-local')), {
      family: AF_INET,
      type: RTN_LOCAL,
      table: RT_TABLE_MAIN,
      scope: 0,
      dst: '10.246.1.1',
      oif: 1,
    });
    assert.deepEqual(decodeRoute(firstReply('route-get-v6')), {
      family: AF_INET6,
      type: RTN_UNICAST,
      table: RT_TABLE_MAIN,
      scope: 0,
      dst: 'fd00:246::2',
      oif: 3,
      prefsrc: 'fd00:246::1',
    });
  });

  it('neighbours: a permanent entry with its MAC, a failed one without', () => {
    assert.deepEqual(decodeNeigh(firstReply('neigh-get-permanent')), {
      family: AF_INET,
      ifindex: 3,
      state: NUD.PERMANENT,
      dst: '10.246.1.2',
      lladdr: '02:aa:bb:cc:dd:ee',
    });
    assert.deepEqual(decodeNeigh(firstReply('neigh-get-failed')), {
      family: AF_INET,
      ifindex: 3,
      state: NUD.FAILED,
      dst: '10.246.1.7',
    });
  });

  it('links: kind, peer index and namespace, carrier, operstate, marker alias', () => {
    const pick = (name: string) => {
      const l = decodeLink(firstReply(name));
      return {
        index: l.index,
        name: l.name,
        up: l.up,
        lowerUp: l.lowerUp,
        operstate: l.operstate,
        kind: l.kind,
        link: l.link,
        linkNetnsId: l.linkNetnsId,
        alias: l.alias,
        mtu: l.mtu,
      };
    };
    assert.deepEqual(pick('link-get-veth-peer-elsewhere'), {
      index: 4,
      name: 'om-c',
      up: true,
      lowerUp: false,
      operstate: IF_OPER.DOWN,
      kind: 'veth',
      link: 2,
      linkNetnsId: 0,
      alias: undefined,
      mtu: 1500,
    });
    assert.deepEqual(pick('link-get-veth-no-carrier'), {
      index: 3,
      name: 'om-a',
      up: true,
      lowerUp: false,
      operstate: IF_OPER.LOWERLAYERDOWN,
      kind: 'veth',
      link: 2,
      linkNetnsId: undefined,
      alias: undefined,
      mtu: 1500,
    });
    assert.deepEqual(pick('link-get-tap-marked'), {
      index: 5,
      name: 'om-tap0',
      up: false,
      lowerUp: false,
      operstate: IF_OPER.DOWN,
      kind: 'tun',
      link: undefined,
      linkNetnsId: undefined,
      alias: 'kube-l2tp tunnel=7 session=8',
      mtu: 1500,
    });
  });
});

describe('lookups over a replayed 6.18 kernel', () => {
  const sockOf = (...names: string[]) => new NetlinkSocket(new ReplayTransport(names.map(ex)));

  it('a route, and the route that does not exist as a typed error', async () => {
    const routes = new RtnlRoutes(sockOf('route-get-via-gateway', 'route-get-unreachable'));
    assert.equal((await routes.get('10.246.9.5', '10.246.1.1')).gateway, '10.246.1.254');
    await assert.rejects(routes.get('10.99.0.1', '10.246.1.1'), (e: unknown) => {
      assert.ok(e instanceof NetlinkError);
      assert.equal(e.code, 'ENETUNREACH');
      assert.equal(e.message, 'RTM_GETROUTE 10.99.0.1 from 10.246.1.1 failed: ENETUNREACH');
      return true;
    });
  });

  it('a neighbour entry, and none (ENOENT) as undefined', async () => {
    const n = new RtnlNeighbours(sockOf('neigh-get-permanent', 'neigh-get-missing'));
    assert.equal((await n.get(3, '10.246.1.2'))?.lladdr, '02:aa:bb:cc:dd:ee');
    assert.equal(await n.get(3, '10.246.1.99'), undefined);
  });

  it('a link by name carries its kind', async () => {
    const l = await new RtnlLinks(sockOf('link-get-tap-marked')).byName('om-tap0');
    assert.equal(l?.kind, 'tun');
  });

  it('the replies end with the ACK our request asked for', () => {
    for (const name of ['route-get-direct', 'neigh-get-permanent']) {
      const last = replies(name).at(-1)!;
      assert.equal(last.readUInt16LE(4), 2, `${name}: NLMSG_ERROR`);
      assert.equal(last.readInt32LE(NLMSG_HDRLEN), 0, `${name}: errno 0 (ACK)`);
    }
  });
});
