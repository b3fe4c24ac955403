// Limits of the userspace pump against the real kernel: the tunnel's UDP socket is its address's only
// owner (no SO_REUSEADDR), and a burst of pump faults (every TAP of a tunnel deleted from outside at
// once) reaches the JS thread rate limited, with the rest counted and the state kept in the pump.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import { loadPump } from '../../datapath/backend/userspace/native.js';
import { inNs, Lab, requireRoot } from '../harness/netns.js';

before(() => requireRoot());

/** A UDP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function bindReuse(port: number): Promise<NodeJS.ErrnoException | undefined> {
  const s = createSocket({ type: 'udp4', reuseAddr: true });
  return new Promise((resolve) => {
    s.once('error', (e) => {
      s.close();
      resolve(e);
    });
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(undefined)));
  });
}

describe('pump socket', () => {
  it('a second local bind to the tunnel address fails, even with SO_REUSEADDR; it works once closed', async () => {
    const pump = loadPump();
    const port = await freePort();
    const cfg = {
      encap: 'udp',
      family: 4,
      local: '127.0.0.1',
      localPort: port,
      remote: '127.0.0.1',
      remotePort: port + 1,
      udpChecksum: true,
    } as const;
    const h = pump.createTunnel(cfg, () => {});
    try {
      const err = await bindReuse(port);
      console.log(`second bind of 127.0.0.1:${port} with SO_REUSEADDR: ${err?.code ?? 'succeeded'}`);
      assert.equal(err?.code, 'EADDRINUSE');
      assert.throws(() => pump.createTunnel(cfg, () => {}), /bind: Address already in use/);
    } finally {
      pump.closeTunnel(h, false);
    }
    assert.equal(await bindReuse(port), undefined, 'the address is free again once the tunnel is closed');
  });
});

describe('pump fault events', () => {
  it('120 TAPs deleted at once: a rate-limited few reach JS, the rest are counted, every loss is kept', async () => {
    const lab = new Lab();
    try {
      const ns = await lab.netns('hd-pumpev');
      const child = fileURLToPath(new URL('./pump-limits-child.js', import.meta.url));
      const out = JSON.parse(await inNs(ns, process.execPath, child, '120')) as {
        events: { fatal: boolean; suppressed: number; message: string }[];
        stats: { delivered: number; suppressed: number };
        elapsedMs: number;
        lost: number;
      };
      console.log(
        `events delivered ${out.stats.delivered}, suppressed ${out.stats.suppressed}, sessions marked lost ${out.lost} (${out.elapsedMs} ms)`,
      );
      assert.ok(out.events.every((e) => !e.fatal && /read from TAP/.test(e.message)));
      assert.equal(out.events.length, out.stats.delivered);
      // burst 10, then one more per second of the run
      const most = 10 + Math.ceil(out.elapsedMs / 1000);
      assert.ok(out.stats.delivered >= 10 && out.stats.delivered <= most, `delivered ${out.stats.delivered}`);
      assert.ok(out.stats.suppressed >= 120 - most);
      assert.equal(out.stats.delivered + out.stats.suppressed, 120, 'every fault delivered or counted');
      assert.equal(out.lost, 120, 'the pump marks every lost TAP, heard of or not');
    } finally {
      await lab.cleanup();
    }
  });
});
