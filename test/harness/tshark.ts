// tshark as the independent L2TPv3 decoder. It cannot guess cookie or sublayer sizes for static
// tunnels, so every call states them.
import { run } from '../../lib/exec.js';

export interface DecodeOptions {
  cookieLength: 0 | 4 | 8;
  l2spec: 'none' | 'default';
  /** UDP ports to decode as L2TP; none = IP encapsulation. */
  udpPorts?: number[];
  /** Extra display filter. */
  filter?: string;
}

export const L2TP_FIELDS = [
  'l2tp.sid',
  'l2tp.cookie',
  'l2tp.l2_spec_s',
  'l2tp.l2_spec_sequence',
  'eth.src',
  'eth.dst',
  'eth.type',
] as const;

export type DecodedFrame = Record<(typeof L2TP_FIELDS)[number], string>;

export function tsharkArgs(o: DecodeOptions): string[] {
  const args = ['-o', `l2tp.cookie_size:cookie${o.cookieLength}`, '-o', `l2tp.l2_specific:${o.l2spec}`];
  for (const p of o.udpPorts ?? []) args.push('-d', `udp.port==${p},l2tp`);
  args.push('-d', 'l2tp.pw_type==0,eth');
  return args;
}

/**
 * Decodes a pcap with tshark and returns the L2TP fields of each packet. The inner Ethernet fields
 * are the second occurrence of eth.* (the first is the capture's own link layer).
 */
export async function decodeL2tp(pcap: string, o: DecodeOptions): Promise<DecodedFrame[]> {
  const fieldArgs = L2TP_FIELDS.flatMap((f) => ['-e', f]);
  const out = await run('tshark', [
    '-n',
    '-r',
    pcap,
    ...tsharkArgs(o),
    ...(o.filter ? ['-Y', o.filter] : []),
    '-T',
    'fields',
    '-E',
    'separator=\t',
    '-E',
    'occurrence=l',
    ...fieldArgs,
  ]);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const cols = line.split('\t');
      return Object.fromEntries(L2TP_FIELDS.map((f, i) => [f, cols[i] ?? ''])) as DecodedFrame;
    });
}
