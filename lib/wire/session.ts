// The parameters of an L2TPv3 ethernet pseudowire, validated as a set, in the vocabulary of
// `ip l2tp` (camelCased). Every part of the project (static config, CRDs, agent, backends) speaks
// these types; the kernel doc's semantics apply: we SEND `cookie` and the PEER's session ID, and we
// EXPECT `peerCookie` on frames addressed to our `sessionId`.
import { z } from 'zod';

export const U32_MAX = 0xffffffff;

export const encapSchema = z.enum(['udp', 'ip']);
export type Encap = z.infer<typeof encapSchema>;
export const l2specSchema = z.enum(['none', 'default']);
export type L2SpecType = z.infer<typeof l2specSchema>;

/** Non-zero 32-bit ID (tunnel or session): 0 means "control" on the wire and "unset" in the kernel. */
export const idSchema = z
  .number()
  .int('must be an integer')
  .min(1, 'must be non-zero (0 is reserved for control messages)')
  .max(U32_MAX, 'must fit in 32 bits (<= 4294967295)');

export const portSchema = z.number().int().min(1, 'must be 1-65535').max(65535, 'must be 1-65535');

/** Cookie as hex text (optionally with ':' separators or a 0x prefix): 4 or 8 bytes. */
export const cookieHexSchema = z
  .string()
  .transform((s) => s.replace(/^0x/i, '').replaceAll(':', ''))
  .refine((s) => /^[0-9a-fA-F]*$/.test(s), 'must be hexadecimal')
  .refine((s) => s.length === 8 || s.length === 16, 'must be 4 or 8 bytes (8 or 16 hex digits)');

/** Linux interface name: at most 15 bytes, no '/', no whitespace, not '.' or '..'. */
export const ifnameSchema = z
  .string()
  .min(1)
  .max(15, 'interface names are at most 15 characters')
  .regex(/^[^/\s:]+$/, "interface names cannot contain '/', ':' or whitespace")
  .refine((s) => s !== '.' && s !== '..', 'interface name cannot be . or ..');

const ipLiteral = z.union([z.ipv4(), z.ipv6()], { error: 'must be an IPv4 or IPv6 address' });

export const tunnelParamsSchema = z
  .object({
    tunnelId: idSchema,
    peerTunnelId: idSchema,
    encap: encapSchema.default('udp'),
    local: ipLiteral,
    remote: ipLiteral,
    udpSourcePort: portSchema.optional(),
    udpDestinationPort: portSchema.optional(),
    udpChecksum: z.boolean().default(false),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.local.includes(':') !== t.remote.includes(':')) {
      ctx.addIssue({
        code: 'custom',
        path: ['remote'],
        message: 'local and remote must be the same IP family',
      });
    }
    if (t.encap === 'udp') {
      for (const k of ['udpSourcePort', 'udpDestinationPort'] as const) {
        if (t[k] === undefined)
          ctx.addIssue({ code: 'custom', path: [k], message: 'required with encap udp' });
      }
    } else {
      for (const k of ['udpSourcePort', 'udpDestinationPort'] as const) {
        if (t[k] !== undefined)
          ctx.addIssue({ code: 'custom', path: [k], message: 'only valid with encap udp' });
      }
    }
  });
export type TunnelParams = z.output<typeof tunnelParamsSchema>;

export const sessionParamsSchema = z
  .object({
    sessionId: idSchema,
    peerSessionId: idSchema,
    name: ifnameSchema.optional(),
    cookie: cookieHexSchema.optional(),
    peerCookie: cookieHexSchema.optional(),
    l2specType: l2specSchema.default('default'),
    sendSequence: z.boolean().default(false),
    requireSequence: z.boolean().default(false),
    reorderTimeoutMs: z.number().int().min(0).default(0),
    mtu: z.number().int().min(68, 'must be at least 68').max(65535).optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.sendSequence || s.requireSequence) && s.l2specType !== 'default') {
      const path = [s.sendSequence ? 'sendSequence' : 'requireSequence'];
      ctx.addIssue({ code: 'custom', path, message: 'sequence numbers need l2specType default' });
    }
  });
export type SessionParams = z.output<typeof sessionParamsSchema>;

export function cookieBytes(hex: string | undefined): Buffer {
  return hex === undefined ? Buffer.alloc(0) : Buffer.from(hex, 'hex');
}

export const ETH_HLEN = 14;

export interface OverheadInput {
  encap: Encap;
  ipv6: boolean;
  /** Length of the cookie on the wire (the kernel's hdr_len uses the cookie it SENDS). */
  cookieLength: 0 | 4 | 8;
  l2specType: L2SpecType;
}

/** L2TPv3 header length after the IP header (UDP header included), as the kernel computes it. */
export function l2tpHeaderLength(o: Pick<OverheadInput, 'encap' | 'cookieLength' | 'l2specType'>): number {
  const l2spec = o.l2specType === 'default' ? 4 : 0;
  return o.encap === 'udp' ? 8 + 4 + 4 + o.cookieLength + l2spec : 4 + o.cookieLength + l2spec;
}

/** Bytes a pseudowire adds around an Ethernet payload: IP + [UDP] + L2TPv3 + Ethernet header. */
export function overhead(o: OverheadInput): number {
  return (o.ipv6 ? 40 : 20) + l2tpHeaderLength(o) + ETH_HLEN;
}

/** The l2tpeth MTU the kernel derives from an underlay MTU (1446 for UDP/IPv4 with defaults). */
export function sessionMtu(o: OverheadInput, underlayMtu = 1500): number {
  return underlayMtu - overhead(o);
}
