// What a device kube-l2tp creates in the node's network namespace exposes of the node. Such a device
// (kernel l2tpeth, TAP, either end of an eBPF session veth, a pseudowire's bridge, a pod's bridge port)
// carries frames from pods and from the tunnel's peer: neither may reach the node through it. So:
//
//   IPv6 off (disable_ipv6; before that accept_ra 0, autoconf 0, addr_gen_mode none, so that even a
//   kernel that re-enables it takes no Router Advertisement and makes no address): no link-local
//   address to reach the node at, no RA that configures it, no RS/MLD/DAD sent by the node onto the wire.
//   ARP answered only for addresses on that device (arp_ignore 1; it has none), and sent with the
//   best local source for the target (arp_announce 2): a pod on the wire cannot ARP for, and then talk
//   to, the node's own addresses.
//
// Per-device sysctls, written through procfs, so it does not matter what created the device. The
// datapath pod's own /proc/sys is read-only (container runtimes mount it so): the agent writes the
// node's through a hostPath mount of /proc/sys/net (KUBE_L2TP_PROC_SYS_NET), which resolves to the
// network namespace of the writer, the node's (host network). Values already right are not written
// (a device made just now is written without reading: its values are the namespace's defaults).
// The per-device files are read and written synchronously: procfs answers in microseconds, where each
// call through the thread pool costs several round trips, and a node sets up thousands of devices.
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { LinkSysctls } from './netlink/rtnl.js';

export const PROC_SYS_NET_ENV = 'KUBE_L2TP_PROC_SYS_NET';

/** In the order written: IPv6 stops taking configuration before it goes off. */
export const DEVICE_SYSCTLS: readonly (readonly [family: 'ipv6' | 'ipv4', key: string, value: string])[] = [
  ['ipv6', 'accept_ra', '0'],
  ['ipv6', 'autoconf', '0'],
  ['ipv6', 'addr_gen_mode', '1'],
  ['ipv6', 'disable_ipv6', '1'],
  ['ipv4', 'arp_ignore', '1'],
  ['ipv4', 'arp_announce', '2'],
];

/** DEVICE_SYSCTLS as the values a hardened device reads back, keyed "ipv6.disable_ipv6" etc. */
export const HARDENED_SYSCTLS: Readonly<Record<string, string>> = Object.fromEntries(
  DEVICE_SYSCTLS.map(([family, key, value]) => [`${family}.${key}`, value]),
);

export class HardeningError extends Error {}

const procSysNet = (): string => process.env[PROC_SYS_NET_ENV] || '/proc/sys/net';

/**
 * Apply DEVICE_SYSCTLS to ifname (in this process's network namespace). A kernel without IPv6 has no
 * ipv6 directory: only the ARP settings apply there. Throws HardeningError naming the file and what
 * to change when a value cannot be written. fresh: a device made just now, whose values are the
 * namespace's defaults: every value is written without reading it first (half the file operations).
 * current: the values a link dump just reported for it; those are not read again.
 */
export async function hardenDevice(
  ifname: string,
  opts: { fresh?: boolean; current?: LinkSysctls | undefined } = {},
): Promise<void> {
  if (!/^[^/\s]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..') {
    throw new HardeningError(`cannot harden device ${JSON.stringify(ifname)}: not an interface name`);
  }
  const base = procSysNet();
  for (const [family, key, value] of DEVICE_SYSCTLS) {
    const file = `${base}/${family}/conf/${ifname}/${key}`;
    let step = 'reading';
    try {
      const known = opts.current?.[family]?.[key];
      if (
        known !== undefined
          ? String(known) === value
          : !opts.fresh && readFileSync(file, 'utf8').trim() === value
      )
        continue;
      step = `writing ${value} to`;
      writeFileSync(file, value);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && family === 'ipv6' && !(await hasIpv6(base))) continue;
      const hint =
        code === 'EROFS' || code === 'EACCES' || code === 'EPERM'
          ? ` (read-only: give the agent the node's /proc/sys/net writable and set ${PROC_SYS_NET_ENV} to it)`
          : '';
      throw new HardeningError(
        `cannot harden ${ifname}: ${step} ${file}: ${code ?? (e as Error).message}${hint}`,
      );
    }
  }
}

/** The current values, keyed "ipv6.disable_ipv6" etc.; undefined where the file is missing. */
export async function deviceSysctls(ifname: string): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const [family, key] of DEVICE_SYSCTLS) {
    out[`${family}.${key}`] = await readFile(`${procSysNet()}/${family}/conf/${ifname}/${key}`, 'utf8').then(
      (s) => s.trim(),
      () => undefined,
    );
  }
  return out;
}

async function hasIpv6(base: string): Promise<boolean> {
  return readFile(`${base}/ipv6/conf/all/disable_ipv6`, 'utf8').then(
    () => true,
    () => false,
  );
}
