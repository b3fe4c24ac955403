// CNI results: one internal shape (the 1.1.0 one) and conversion from/to 0.4.0, 1.0.0 and 1.1.0.
// Go's libcni omits empty fields (omitempty); so do we.
import { z } from 'zod';
import { CniCode, CniError } from './errors.js';
import { compareVersions, isSupportedVersion } from './versions.js';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}
export interface CniIpConfig {
  address: string;
  gateway?: string;
  /** Index into interfaces; omitted by IPAM plugins. */
  interface?: number;
}
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}
/** The internal result: the 1.1.0 shape, whatever version it was read from. */
export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIpConfig[];
  routes: CniRoute[];
  dns: CniDns;
}

const optStr = z.string().optional();
const optInt = z.number().int().optional();
const interfaceSchema = z.looseObject({
  name: z.string(),
  mac: optStr,
  mtu: optInt,
  sandbox: optStr,
  socketPath: optStr,
  pciID: optStr,
});
const ipSchema = z.looseObject({
  version: z.enum(['4', '6']).optional(), // 0.3.x/0.4.0 only
  address: z.string(),
  gateway: optStr,
  interface: z.number().int().min(0).optional(),
});
const routeSchema = z.looseObject({
  dst: z.string(),
  gw: optStr,
  mtu: optInt,
  advmss: optInt,
  priority: optInt,
  table: optInt,
  scope: optInt,
});
const dnsSchema = z.looseObject({
  nameservers: z.array(z.string()).optional(),
  domain: optStr,
  search: z.array(z.string()).optional(),
  options: z.array(z.string()).optional(),
});
export const resultSchema = z.looseObject({
  cniVersion: z.string().optional(),
  interfaces: z.array(interfaceSchema).optional().nullable(),
  ips: z.array(ipSchema).optional().nullable(),
  routes: z.array(routeSchema).optional().nullable(),
  dns: dnsSchema.optional().nullable(),
});

export function emptyResult(): CniResult {
  return { interfaces: [], ips: [], routes: [], dns: {} };
}

function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) {
    const v = o[k];
    if (v === undefined || v === '' || v === 0 || (Array.isArray(v) && v.length === 0)) delete o[k];
  }
  return o;
}

/**
 * Read a result (prevResult, or an IPAM delegate's output) of any version from 0.3.0 up.
 * `where` names the field for error messages.
 */
export function parseResult(raw: unknown, where: string, versionHint?: string): CniResult {
  const r = resultSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new CniError(
      CniCode.DecodingFailure,
      `${where}: ${[where, ...(i?.path ?? [])].slice(1).join('.') || 'value'}: ${i?.message ?? 'invalid result'}`,
    );
  }
  const v = r.data.cniVersion ?? versionHint ?? '1.0.0';
  if (compareVersions(v, '0.3.0') < 0) {
    throw new CniError(
      CniCode.IncompatibleVersion,
      `${where}: result version ${v} is not supported (need >= 0.3.0)`,
    );
  }
  const out = emptyResult();
  for (const i of r.data.interfaces ?? []) {
    out.interfaces.push(
      defined({
        name: i.name,
        mac: i.mac,
        mtu: i.mtu,
        sandbox: i.sandbox,
        socketPath: i.socketPath,
        pciID: i.pciID,
      }) as CniInterface,
    );
  }
  for (const ip of r.data.ips ?? []) {
    out.ips.push(
      defined({ address: ip.address, gateway: ip.gateway, interface: ip.interface }) as CniIpConfig,
    );
    // interface 0 is meaningful: keep it
    if (ip.interface === 0) out.ips[out.ips.length - 1]!.interface = 0;
  }
  for (const rt of r.data.routes ?? []) {
    const route = defined({
      dst: rt.dst,
      gw: rt.gw,
      mtu: rt.mtu,
      advmss: rt.advmss,
      priority: rt.priority,
      table: rt.table,
      scope: rt.scope,
    }) as CniRoute;
    // table and scope are pointers in Go: 0 is a value
    if (rt.table === 0) route.table = 0;
    if (rt.scope === 0) route.scope = 0;
    out.routes.push(route);
  }
  if (r.data.dns) {
    out.dns = defined({
      nameservers: r.data.dns.nameservers,
      domain: r.data.dns.domain,
      search: r.data.dns.search,
      options: r.data.dns.options,
    }) as CniDns;
  }
  return out;
}

const ipVersion = (address: string): '4' | '6' => (address.includes(':') ? '6' : '4');

/** The result as JSON for the requested spec version (0.4.0, 1.0.0 or 1.1.0). */
export function formatResult(res: CniResult, version: string): Record<string, unknown> {
  if (!isSupportedVersion(version)) {
    throw new CniError(CniCode.IncompatibleVersion, `cannot format a result for cniVersion ${version}`);
  }
  const legacy = version === '0.4.0';
  const v11 = version === '1.1.0';
  const out: Record<string, unknown> = { cniVersion: version };
  if (res.interfaces.length > 0) {
    out.interfaces = res.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o.mac = i.mac;
      if (!legacy && i.mtu) o.mtu = i.mtu;
      if (i.sandbox) o.sandbox = i.sandbox;
      if (v11 && i.socketPath) o.socketPath = i.socketPath;
      if (v11 && i.pciID) o.pciID = i.pciID;
      return o;
    });
  }
  if (res.ips.length > 0) {
    out.ips = res.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (legacy) o.version = ipVersion(ip.address);
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway) o.gateway = ip.gateway;
      return o;
    });
  }
  if (res.routes.length > 0) {
    out.routes = res.routes.map((r) => {
      const o: Record<string, unknown> = { dst: r.dst };
      if (r.gw) o.gw = r.gw;
      if (v11) {
        if (r.mtu) o.mtu = r.mtu;
        if (r.advmss) o.advmss = r.advmss;
        if (r.priority) o.priority = r.priority;
        if (r.table !== undefined) o.table = r.table;
        if (r.scope !== undefined) o.scope = r.scope;
      }
      return o;
    });
  }
  const dns = defined({ ...res.dns });
  if (Object.keys(dns).length > 0) out.dns = dns;
  return out;
}
