// Netdev-side management of the session TAPs: ownership marker, MTU, state. Listing and deleting go
// through rtnetlink (lib/netlink); per-session reads and writes through sysfs, which costs less, and
// synchronously: sysfs answers in microseconds, a call through the thread pool costs several round
// trips, and a node sets up thousands of sessions.
//
// Ownership: every TAP this backend creates carries the marker of lib/device-marker.ts in its
// alias, so a restarted datapath adopts exactly its own TAPs (and the static runner reuses the same
// names), while a TAP created by anything else is never adopted or deleted.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { formatMarker, parseMarker } from '../../../lib/device-marker.js';
import { hardenDevice } from '../../../lib/netdev-hardening.js';
import { Errno, NetlinkError } from '../../../lib/netlink/errors.js';
import { withRtnl } from '../../../lib/netlink/rtnl-handle.js';
import { IFF_UP, type LinkChange, type LinkInfo, type LinkSysctls } from '../../../lib/netlink/rtnl.js';

export interface TapLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  up: boolean;
  alias?: string;
  /** Parsed from the marker when the TAP is ours. */
  owner?: { tunnelId: number; sessionId: number };
  /** Hardening's sysctls, when the link dump that found it carried them. */
  sysctls?: LinkSysctls;
}

/** A dumped link as the TapLink shape (every kube-l2tp session device reads the same). */
export function toTapLink(l: LinkInfo): TapLink {
  const link: TapLink = { ifname: l.name, ifindex: l.index, mtu: l.mtu ?? 0, up: l.up };
  if (l.alias !== undefined) link.alias = l.alias;
  const owner = parseMarker(l.alias);
  if (owner) link.owner = owner;
  if (l.sysctls) link.sysctls = l.sysctls;
  return link;
}

/** Every TUN/TAP device in this network namespace (link kind "tun"), in one dump. */
export async function listTaps(): Promise<TapLink[]> {
  const links = await withRtnl((r) => r.links.list());
  return links.filter((l) => l.kind === 'tun').map(toTapLink);
}

const sysPath = (ifname: string, attr: string) => `/sys/class/net/${ifname}/${attr}`;

function readSys(ifname: string, attr: string): string | undefined {
  try {
    return readFileSync(sysPath(ifname, attr), 'utf8').trim();
  } catch {
    return undefined;
  }
}

const isName = (ifname: string) => !ifname.includes('/') && ifname !== '.' && ifname !== '..';

/** The ifindex of the link named ifname, or undefined: one sysfs read. */
export function ifindexOf(ifname: string): number | undefined {
  const ifindex = isName(ifname) ? readSys(ifname, 'ifindex') : undefined;
  return ifindex === undefined ? undefined : Number(ifindex);
}

/**
 * The link named ifname, whatever its kind, or undefined. Read from sysfs (this network namespace's):
 * it runs for every new session, and an `ip` exec costs milliseconds where a sysfs read costs microseconds.
 */
export async function getLink(ifname: string): Promise<(TapLink & { kind: 'tun' | 'other' }) | undefined> {
  if (!isName(ifname)) return undefined;
  const ifindex = readSys(ifname, 'ifindex');
  if (ifindex === undefined) return undefined;
  const [mtu, flags, alias] = [readSys(ifname, 'mtu'), readSys(ifname, 'flags'), readSys(ifname, 'ifalias')];
  const tun = existsSync(sysPath(ifname, 'tun_flags'));
  const link: TapLink = {
    ifname,
    ifindex: Number(ifindex),
    mtu: Number(mtu),
    up: (parseInt(flags ?? '0', 16) & 1) === 1,
  };
  if (alias) link.alias = alias;
  const owner = parseMarker(alias || undefined);
  if (owner) link.owner = owner;
  return { ...link, kind: tun ? 'tun' : 'other' };
}

/**
 * Hardened (nothing of the node reachable through it, before it is up), marked as ours, MTU set and
 * (unless up is false) up: three sysfs writes. Where /sys is read-only (a container without
 * privileges), rtnetlink requests do them. fresh: made just now (hardening need not read first);
 * current: the device as read just now, to leave what is right as it is.
 */
export async function configureTap(
  ifname: string,
  tunnelId: number,
  sessionId: number,
  mtu: number,
  opts: { up?: boolean; fresh?: boolean; current?: TapLink } = {},
) {
  const { up = true, fresh = false, current } = opts;
  await hardenDevice(ifname, { fresh, current: current?.sysctls });
  const alias = formatMarker({ tunnelId, sessionId });
  const change: LinkChange = {
    ...(current?.alias !== alias ? { alias } : {}),
    ...(current?.mtu !== mtu ? { mtu } : {}),
  };
  if (change.alias !== undefined || change.mtu !== undefined) {
    await sysfsOrRtnl(
      ifname,
      () => {
        if (change.alias !== undefined) writeFileSync(sysPath(ifname, 'ifalias'), change.alias);
        if (change.mtu !== undefined) writeFileSync(sysPath(ifname, 'mtu'), String(change.mtu));
      },
      change,
    );
  }
  if (up && !current?.up) await setLinkUp(ifname);
}

/** Brings the link up (a sysfs write; rtnetlink where /sys is read-only). */
export async function setLinkUp(ifname: string): Promise<void> {
  await sysfsOrRtnl(
    ifname,
    () => {
      const flags = parseInt(readSys(ifname, 'flags') ?? '0', 16);
      if (!(flags & IFF_UP)) writeFileSync(sysPath(ifname, 'flags'), `0x${(flags | IFF_UP).toString(16)}`);
    },
    { up: true },
  );
}

/**
 * Brings up a link found down (set down by hand). One that left this namespace meanwhile (a CNI
 * moves an exclusive device into a pod, setting it down first) is not an error: it is not ours to set.
 */
export async function upAgain(ifname: string): Promise<void> {
  await setLinkUp(ifname).catch((e: unknown) => {
    if (readSys(ifname, 'ifindex') !== undefined) throw e;
  });
}

/** Runs the sysfs writes; where /sys refuses them, makes the same change over rtnetlink. */
async function sysfsOrRtnl(ifname: string, writes: () => void, change: LinkChange): Promise<void> {
  try {
    writes();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM') throw e;
    await withRtnl(async (r) => {
      const link = await r.links.byName(ifname);
      if (!link) throw new Error(`interface ${ifname} does not exist`);
      await r.links.set(link.index, change, ifname);
    });
  }
}

/** Deletes a link; one that is gone already is fine. */
export async function deleteLink(ifname: string): Promise<void> {
  try {
    await withRtnl((r) => r.links.del(ifname));
  } catch (e) {
    if (!(e instanceof NetlinkError && e.errno === Errno.ENODEV)) throw e;
  }
}
