// A device's sysctls out of the link dump (IFLA_AF_SPEC), against a dump the development host's
// kernel (6.18) sent lib/netlink for a namespace whose devices had the values set through procfs
// (test/fixtures/netlink/kernel-6.18-link-sysctls.json lists them).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadExchanges, ReplayTransport } from '../../test/harness/netlink-fixtures.js';
import { AttrMap, encodeAttrs } from './codec.js';
import { AF_SPEC, decodeLinkSysctls, RtnlLinks } from './rtnl.js';
import { NetlinkSocket } from './socket.js';

const { ex, req } = loadExchanges('kernel-6.18-link-sysctls.json');
const links = (sysctls?: boolean) => {
  const t = new ReplayTransport([ex('link-dump-sysctls')]);
  const l = new RtnlLinks(new NetlinkSocket(t));
  return { t, list: () => l.list(sysctls === undefined ? {} : { sysctls }) };
};

describe('link sysctls from the dump (kernel bytes)', () => {
  it('sends the dump request the kernel answered', async () => {
    const { t, list } = links(true);
    await list();
    assert.equal(t.sent.length, 1);
    const sent = t.sent[0]!;
    const captured = req('link-dump-sysctls');
    // type and flags, then the body; sequence numbers differ per run
    assert.equal(sent.readUInt32LE(4), captured.readUInt32LE(4));
    assert.equal(sent.subarray(16).toString('hex'), captured.subarray(16).toString('hex'));
  });

  it('reads the values procfs showed, per device', async () => {
    const got = Object.fromEntries((await links(true).list()).map((l) => [l.name, l.sysctls]));
    assert.deepEqual(got, {
      lo: {
        ipv4: { arp_announce: 0, arp_ignore: 0 },
        ipv6: { accept_ra: 1, autoconf: 1, disable_ipv6: 0, addr_gen_mode: 0 },
      },
      'adp-b': {
        ipv4: { arp_announce: 1, arp_ignore: 8 },
        ipv6: { accept_ra: 2, autoconf: 1, disable_ipv6: 0, addr_gen_mode: 3 },
      },
      'adp-a': {
        ipv4: { arp_announce: 2, arp_ignore: 1 },
        ipv6: { accept_ra: 0, autoconf: 0, disable_ipv6: 1, addr_gen_mode: 1 },
      },
    });
  });

  it('leaves them out unless asked (a dump of every device of a node)', async () => {
    for (const l of await links().list()) assert.equal(l.sysctls, undefined, l.name);
    for (const l of await links(false).list()) assert.equal(l.sysctls, undefined, l.name);
  });

  it('gives no value for an array too short to hold it, and no family the kernel left out', () => {
    const spec = AttrMap.parse(
      encodeAttrs([
        { type: AF_SPEC.INET, nested: [{ type: AF_SPEC.INET_CONF, bytes: Buffer.alloc(18 * 4) }] },
      ]),
    );
    // arp_announce is the 18th IPV4_DEVCONF value, arp_ignore the 19th
    assert.deepEqual(decodeLinkSysctls(spec), { ipv4: { arp_announce: 0 } });
    assert.deepEqual(decodeLinkSysctls(AttrMap.parse(Buffer.alloc(0))), {});
  });
});
