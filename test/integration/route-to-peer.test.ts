// The datapath's one route lookup (lib/netlink/route-to-peer.ts) and what the agent reports from it,
// against the kernel: two namespaces on a veth underlay, a gateway route, the link taken down on
// either side, a destination with no route, a local one. `ip route get` is the independent checker.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { probeUnderlay } from '../../datapath/agent/underlay.js';
import { NetlinkError } from '../../lib/netlink/errors.js';
import { routeToPeer } from '../../lib/netlink/route-to-peer.js';
import { inNsCapture, ipIn, Lab, requireRoot } from '../harness/netns.js';

const A = 'om-rp-a';
const B = 'om-rp-b';
const nsPath = (ns: string) => `/run/netns/${ns}`;

describe('route to a tunnel peer, through rtnetlink', () => {
  const lab = new Lab();
  before(async () => {
    requireRoot();
    await lab.netns(A);
    await lab.netns(B);
    await lab.veth(
      { ns: A, name: 'om-rp0', addr: '10.246.20.1/24' },
      { ns: B, name: 'om-rp1', addr: '10.246.20.2/24' },
    );
    await ipIn(A, 'link', 'set', 'om-rp0', 'mtu', '1400');
    await ipIn(A, 'route', 'add', '10.246.21.0/24', 'via', '10.246.20.254', 'dev', 'om-rp0');
  });
  after(() => lab.cleanup());

  const ipRouteGet = async (dst: string) =>
    (
      JSON.parse(await ipIn(A, '-j', 'route', 'get', dst, 'from', '10.246.20.1')) as {
        dev: string;
        gateway?: string;
      }[]
    )[0]!;

  it('a directly connected peer: the device, its MTU, the peer as next hop; as ip route get says', async () => {
    const r = await routeToPeer('10.246.20.1', '10.246.20.2', nsPath(A));
    const want = await ipRouteGet('10.246.20.2');
    assert.deepEqual(
      {
        local: r.local,
        dev: r.link.name,
        mtu: r.link.mtu,
        nexthop: r.nexthop,
        up: r.link.up,
        lowerUp: r.link.lowerUp,
      },
      { local: false, dev: want.dev, mtu: 1400, nexthop: '10.246.20.2', up: true, lowerUp: true },
    );
    assert.equal(await probeUnderlay('10.246.20.1', '10.246.20.2', nsPath(A)), undefined);
  });

  it('a peer behind a gateway: the gateway is the next hop', async () => {
    const r = await routeToPeer('10.246.20.1', '10.246.21.9', nsPath(A));
    const want = await ipRouteGet('10.246.21.9');
    assert.equal(want.gateway, '10.246.20.254');
    assert.deepEqual([r.link.name, r.nexthop], [want.dev, '10.246.20.254']);
  });

  it('an address of this host is local', async () => {
    const r = await routeToPeer('10.246.20.1', '10.246.20.1', nsPath(A));
    assert.equal(r.local, true);
    assert.equal(r.link.name, 'lo');
    assert.equal(await probeUnderlay('10.246.20.1', '10.246.20.1', nsPath(A)), undefined);
  });

  it('no route: a typed error, and the status says which', async () => {
    await assert.rejects(routeToPeer('10.246.20.1', '10.246.99.1', nsPath(A)), (e: unknown) => {
      assert.ok(e instanceof NetlinkError);
      assert.equal(e.code, 'ENETUNREACH');
      return true;
    });
    assert.equal(
      await probeUnderlay('10.246.20.1', '10.246.99.1', nsPath(A)),
      'no underlay route from 10.246.20.1 to 10.246.99.1 (ENETUNREACH)',
    );
  });

  it('the far end down: no carrier here; this end down: no route at all', async () => {
    await ipIn(B, 'link', 'set', 'om-rp1', 'down');
    try {
      assert.equal(
        await probeUnderlay('10.246.20.1', '10.246.20.2', nsPath(A)),
        'underlay interface om-rp0 has no carrier',
      );
    } finally {
      await ipIn(B, 'link', 'set', 'om-rp1', 'up');
    }
    await ipIn(A, 'link', 'set', 'om-rp0', 'down');
    try {
      // with the device down its connected route is gone too: the lookup itself fails, as ip's does
      assert.equal(
        await probeUnderlay('10.246.20.1', '10.246.20.2', nsPath(A)),
        'no underlay route from 10.246.20.1 to 10.246.20.2 (ENETUNREACH)',
      );
      assert.equal(
        (await inNsCapture(A, 'ip', 'route', 'get', '10.246.20.2', 'from', '10.246.20.1')).stderr.trim(),
        'RTNETLINK answers: Network is unreachable',
      );
    } finally {
      await ipIn(A, 'link', 'set', 'om-rp0', 'up');
      await ipIn(A, 'route', 'replace', '10.246.21.0/24', 'via', '10.246.20.254', 'dev', 'om-rp0');
    }
    assert.equal(await probeUnderlay('10.246.20.1', '10.246.20.2', nsPath(A)), undefined, 'back up');
  });
});
