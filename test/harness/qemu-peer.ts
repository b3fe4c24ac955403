// QEMU's userspace L2TPv3 (`-netdev l2tpv3`), guestless, hub-bridged to a TAP: an independent
// implementation to interoperate with (reference: interop-peers.md). QEMU's options are expressed
// from ITS point of view; peerOf() mirrors one of our sessions into them.
import { spawn, type ChildProcess } from 'node:child_process';
import { inNsCapture } from './netns.js';

export interface QemuL2tpv3 {
  encap: 'udp' | 'ip';
  src: string;
  dst: string;
  srcport?: number;
  dstport?: number;
  /** Session id QEMU sends (our sessionId). */
  txsession: number;
  /** Session id QEMU accepts (our peerSessionId). */
  rxsession: number;
  /** Hex cookies, both or neither, 4 or 8 bytes. txcookie = what QEMU sends (our peerCookie). */
  txcookie?: string;
  rxcookie?: string;
  /** 4-byte counter field: matches l2specType default (on) or none (off). */
  counter: boolean;
  /** TAP QEMU creates in ns. */
  tap: string;
  /** src and dst are IPv6 addresses. */
  ipv6?: boolean;
}

export function qemuArgs(o: QemuL2tpv3): string[] {
  const l2 = [
    'l2tpv3',
    'id=l',
    `src=${o.src}`,
    `dst=${o.dst}`,
    `udp=${o.encap === 'udp' ? 'on' : 'off'}`,
    ...(o.encap === 'udp' ? [`srcport=${o.srcport}`, `dstport=${o.dstport}`] : []),
    `txsession=${o.txsession}`,
    `rxsession=${o.rxsession}`,
    `counter=${o.counter ? 'on' : 'off'}`,
    ...(o.ipv6 ? ['ipv6=on'] : []),
  ];
  if (o.txcookie !== undefined && o.rxcookie !== undefined) {
    if (o.txcookie.length === 16) l2.push('cookie64=on');
    l2.push(`txcookie=0x${o.txcookie}`, `rxcookie=0x${o.rxcookie}`);
  }
  return [
    '-machine',
    'none',
    '-nographic',
    '-nodefaults',
    '-display',
    'none',
    '-netdev',
    l2.join(','),
    '-netdev',
    `tap,id=t,ifname=${o.tap},script=no,downscript=no`,
    '-netdev',
    'hubport,id=h1,hubid=0,netdev=l',
    '-netdev',
    'hubport,id=h2,hubid=0,netdev=t',
  ];
}

export interface QemuPeer {
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Start QEMU in ns and wait until its TAP exists. */
export async function startQemuPeer(ns: string, o: QemuL2tpv3): Promise<QemuPeer> {
  const proc = spawn('ip', ['netns', 'exec', ns, 'qemu-system-x86_64', ...qemuArgs(o)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const done = new Promise<void>((r) =>
    proc.on('exit', () => {
      exited = true;
      r();
    }),
  );
  const stop = async () => {
    if (!exited) proc.kill('SIGKILL');
    await done;
  };
  for (let i = 0; i < 100; i++) {
    if (exited) throw new Error(`qemu exited: ${stderr}`);
    if ((await inNsCapture(ns, 'ip', 'link', 'show', o.tap)).code === 0) return { proc, stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`qemu did not create ${o.tap}: ${stderr}`);
}
