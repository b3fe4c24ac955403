// Netdev-side management of the session TAPs through iproute2: ownership marker, MTU, state.
//
// Ownership marker: the interface alias (IFLA_IFALIAS, `ip link set dev X alias ...`) is set to
// "kube-l2tp tunnel=<id> session=<id>". It survives the process, is visible to `ip link`, and lets a
// restarted datapath adopt exactly its own TAPs (and the static runner reuse the same names), while a
// TAP created by anything else is never adopted or deleted.
import { run, runCapture } from '../../../lib/exec.js';

export const TAP_MARKER = 'kube-l2tp';

export interface TapLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  up: boolean;
  alias?: string;
  /** Parsed from the marker when the TAP is ours. */
  owner?: { tunnelId: number; sessionId: number };
}

export function markerFor(tunnelId: number, sessionId: number): string {
  return `${TAP_MARKER} tunnel=${tunnelId} session=${sessionId}`;
}

export function parseMarker(alias: string | undefined): { tunnelId: number; sessionId: number } | undefined {
  const m = alias === undefined ? null : /^kube-l2tp tunnel=(\d+) session=(\d+)$/.exec(alias);
  return m ? { tunnelId: Number(m[1]), sessionId: Number(m[2]) } : undefined;
}

interface IpLinkJson {
  ifname: string;
  ifindex: number;
  mtu: number;
  flags?: string[];
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}

function toTapLink(l: IpLinkJson): TapLink {
  const link: TapLink = {
    ifname: l.ifname,
    ifindex: l.ifindex,
    mtu: l.mtu,
    up: (l.flags ?? []).includes('UP'),
  };
  if (l.ifalias !== undefined) link.alias = l.ifalias;
  const owner = parseMarker(l.ifalias);
  if (owner) link.owner = owner;
  return link;
}

/** Every TUN/TAP device in this network namespace. */
export async function listTaps(): Promise<TapLink[]> {
  const out = await run('ip', ['-j', '-d', 'link', 'show', 'type', 'tun']);
  return (JSON.parse(out || '[]') as IpLinkJson[]).map(toTapLink);
}

/** The link named ifname, whatever its kind, or undefined. */
export async function getLink(ifname: string): Promise<(TapLink & { kind?: string }) | undefined> {
  const r = await runCapture('ip', ['-j', '-d', 'link', 'show', 'dev', ifname]);
  if (r.code !== 0) return undefined;
  const l = (JSON.parse(r.stdout) as IpLinkJson[])[0];
  if (!l) return undefined;
  const kind = l.linkinfo?.info_kind;
  return kind === undefined ? toTapLink(l) : { ...toTapLink(l), kind };
}

/** Mark as ours, set the MTU and bring the TAP up. */
export async function configureTap(ifname: string, tunnelId: number, sessionId: number, mtu: number) {
  await run('ip', ['link', 'set', 'dev', ifname, 'alias', markerFor(tunnelId, sessionId)]);
  await run('ip', ['link', 'set', 'dev', ifname, 'mtu', String(mtu), 'up']);
}

export async function deleteLink(ifname: string): Promise<void> {
  await runCapture('ip', ['link', 'del', 'dev', ifname]);
}
