import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  DEVICE_SYSCTLS,
  HARDENED_SYSCTLS as hardened,
  HardeningError,
  PROC_SYS_NET_ENV,
  hardenDevice,
} from './netdev-hardening.js';
import { RtnlLinks } from './netlink/rtnl.js';
import { NetlinkSocket } from './netlink/socket.js';
import { loadExchanges, ReplayTransport } from '../test/harness/netlink-fixtures.js';

// its setup gave adp-a every hardened value through procfs
const sysctlsDump = loadExchanges('kernel-6.18-link-sysctls.json');

// A /proc/sys/net of files: a device's directory holds the kernel's defaults for a new device.
const DEFAULTS: Record<string, string> = {
  'ipv6.accept_ra': '1',
  'ipv6.autoconf': '1',
  'ipv6.addr_gen_mode': '0',
  'ipv6.disable_ipv6': '0',
  'ipv4.arp_ignore': '0',
  'ipv4.arp_announce': '0',
};

describe('hardenDevice', () => {
  let base = '';
  const file = (dev: string, family: string, key: string) => join(base, family, 'conf', dev, key);
  const read = (dev: string) =>
    Object.fromEntries(DEVICE_SYSCTLS.map(([f, k]) => [`${f}.${k}`, readFileSync(file(dev, f, k), 'utf8')]));
  function device(dev: string, values: Record<string, string> = DEFAULTS, families = ['ipv4', 'ipv6']) {
    for (const family of families) mkdirSync(join(base, family, 'conf', dev), { recursive: true });
    // what tells the hardening that the kernel has IPv6
    if (families.includes('ipv6')) {
      mkdirSync(join(base, 'ipv6', 'conf', 'all'), { recursive: true });
      writeFileSync(join(base, 'ipv6', 'conf', 'all', 'disable_ipv6'), '0');
    }
    for (const [f, k] of DEVICE_SYSCTLS) {
      if (families.includes(f)) writeFileSync(file(dev, f, k), values[`${f}.${k}`]!);
    }
  }

  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'harden-'));
    process.env[PROC_SYS_NET_ENV] = base;
  });
  afterEach(() => {
    delete process.env[PROC_SYS_NET_ENV];
    rmSync(base, { recursive: true, force: true });
  });

  it('sets every value of a new device, with or without reading first', async () => {
    device('l2tpeth1');
    device('l2tpeth2');
    await hardenDevice('l2tpeth1');
    await hardenDevice('l2tpeth2', { fresh: true });
    assert.deepEqual(read('l2tpeth1'), hardened);
    assert.deepEqual(read('l2tpeth2'), hardened);
  });

  it('writes no value that is right already (an adopted device where procfs is read-only)', async () => {
    device('l2tpeth1', { ...hardened, 'ipv4.arp_announce': '0' });
    const mtimes = () =>
      DEVICE_SYSCTLS.map(([f, k]) => statSync(file('l2tpeth1', f, k), { bigint: true }).mtimeNs);
    const before = mtimes();
    await new Promise((r) => setTimeout(r, 5));
    await hardenDevice('l2tpeth1');
    assert.deepEqual(read('l2tpeth1'), hardened);
    assert.deepEqual(mtimes().slice(0, -1), before.slice(0, -1));
    assert.notEqual(mtimes().at(-1), before.at(-1));
  });

  it('a fresh device writes without reading: a value it cannot write is an error naming the file', async () => {
    device('l2tpeth1', hardened);
    // root ignores file modes: a directory in the file's place makes the write fail for anyone
    rmSync(file('l2tpeth1', 'ipv4', 'arp_ignore'));
    mkdirSync(file('l2tpeth1', 'ipv4', 'arp_ignore'));
    await assert.rejects(
      hardenDevice('l2tpeth1', { fresh: true }),
      (e: unknown) =>
        e instanceof HardeningError &&
        e.message ===
          `cannot harden l2tpeth1: writing 1 to ${file('l2tpeth1', 'ipv4', 'arp_ignore')}: EISDIR`,
    );
  });

  it('a device that does not exist is an error, read first or not', async () => {
    device('other');
    for (const fresh of [false, true]) {
      await assert.rejects(hardenDevice('l2tpeth9', { fresh }), (e: unknown) => {
        assert.ok(e instanceof HardeningError);
        assert.match(e.message, /^cannot harden l2tpeth9: (reading|writing 0 to) .*accept_ra: ENOENT$/);
        return true;
      });
    }
  });

  it('a kernel without IPv6 gets the ARP settings only', async () => {
    device('l2tpeth1', DEFAULTS, ['ipv4']);
    rmSync(join(base, 'ipv6'), { recursive: true, force: true });
    for (const fresh of [false, true]) await hardenDevice('l2tpeth1', { fresh });
    assert.equal(readFileSync(file('l2tpeth1', 'ipv4', 'arp_ignore'), 'utf8'), '1');
    assert.equal(readFileSync(file('l2tpeth1', 'ipv4', 'arp_announce'), 'utf8'), '2');
  });

  it('takes the values a link dump reported: reads none of them, writes only what is wrong', async () => {
    device('l2tpeth1', DEFAULTS);
    // a directory in a file's place fails any read or write of it
    rmSync(file('l2tpeth1', 'ipv6', 'accept_ra'));
    mkdirSync(file('l2tpeth1', 'ipv6', 'accept_ra'));
    const current = {
      ipv4: { arp_ignore: 1, arp_announce: 0 },
      ipv6: { accept_ra: 0, autoconf: 0, addr_gen_mode: 1, disable_ipv6: 1 },
    };
    await hardenDevice('l2tpeth1', { current });
    assert.equal(readFileSync(file('l2tpeth1', 'ipv4', 'arp_announce'), 'utf8'), '2');
    // reported right: left as the files were
    assert.equal(readFileSync(file('l2tpeth1', 'ipv4', 'arp_ignore'), 'utf8'), '0');
  });

  it("a hardened device as the kernel's link dump reports it needs no file operation", async () => {
    // a node with IPv6, and no files of adp-a: any read or write of them would fail
    device('other');
    const dumped = new RtnlLinks(
      new NetlinkSocket(new ReplayTransport([sysctlsDump.ex('link-dump-sysctls')])),
    );
    const hardenedDev = (await dumped.list({ sysctls: true })).find((l) => l.name === 'adp-a');
    assert.ok(hardenedDev?.sysctls);
    await hardenDevice('adp-a', { current: hardenedDev.sysctls });
  });

  it('refuses a name that is not an interface name', async () => {
    await assert.rejects(hardenDevice('../all'), HardeningError);
    await assert.rejects(hardenDevice('..'), HardeningError);
  });
});
