// The other side of a cross-cluster (external peer) link: each cluster holds its side, and the IDs,
// ports, addresses and cookies are reversed at the peer exactly as in the kernel doc's Host 1 /
// Host 2 table. `kube-l2tp-operator mirror -f side-a.yaml --node NODE_B` prints side B.
import YAML from 'yaml';
import {
  API_VERSION,
  pseudowireSpecSchema,
  tunnelSpecSchema,
  type L2TPTunnel,
  type Pseudowire,
} from '../lib/api/schemas.js';

export interface MirrorOptions {
  /** Node in the other cluster that terminates the tunnel there. */
  node: string;
  /**
   * The address the other side reaches this one at. Given, it wins over the spec's and the status's
   * (behind a NAT those are the inside address); else the spec's, else the status's (the node's).
   */
  localAddress?: string;
  /** Name of the mirrored tunnel (default: the same name). */
  tunnelName?: string;
}

type Obj = {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  spec?: unknown;
  status?: unknown;
};

/**
 * The other side of a tunnel. Its spec.allowedNamespaces is not copied: it grants namespaces of this
 * cluster, and which namespaces of the other cluster may use the tunnel is that cluster's decision.
 * The mirrored tunnel lists none, in plain sight (refusing every Pseudowire until its admin lists
 * some), and mirrorManifest says so in a comment line.
 */
export function mirrorTunnel(t: L2TPTunnel, o: MirrorOptions): L2TPTunnel {
  const spec = tunnelSpecSchema.parse(t.spec);
  const ext = spec.peer.external;
  if (!ext)
    throw new Error(`L2TPTunnel ${t.metadata.name}: only a tunnel with peer.external can be mirrored`);
  const localAddress = o.localAddress ?? spec.local.address ?? t.status?.localAddress;
  if (!localAddress)
    throw new Error(
      `L2TPTunnel ${t.metadata.name}: give spec.local.address or --local-address (the other side needs our address)`,
    );
  if (spec.local.tunnelID === undefined)
    throw new Error(`L2TPTunnel ${t.metadata.name}: spec.local.tunnelID is required`);
  const udp = spec.encapsulation === 'UDP';
  return {
    apiVersion: API_VERSION,
    kind: 'L2TPTunnel',
    metadata: { name: o.tunnelName ?? t.metadata.name },
    spec: {
      encapsulation: spec.encapsulation,
      udpChecksum: spec.udpChecksum,
      allowedNamespaces: [],
      local: {
        node: o.node,
        address: ext.address,
        tunnelID: ext.tunnelID,
        ...(udp && ext.udpPort !== undefined ? { udpPort: ext.udpPort } : {}),
      },
      peer: {
        external: {
          address: localAddress,
          tunnelID: spec.local.tunnelID,
          ...(udp && spec.local.udpPort !== undefined ? { udpPort: spec.local.udpPort } : {}),
        },
      },
    },
  };
}

/**
 * The other side of a pseudowire. Its spec.ipam is left out: the pods of both clusters share one
 * segment, and the same pool on both sides would hand out the same addresses twice. So is its
 * spec.allowedNamespaces: it lets pods of other namespaces of this cluster attach, and the other
 * cluster decides its own (by default only its namespace's pods). mirrorManifest says so in comment
 * lines.
 */
export function mirrorPseudowire(p: Pseudowire, tunnelName: string): Pseudowire {
  const spec = pseudowireSpecSchema.parse(p.spec);
  if (spec.sessionID === undefined || spec.peerSessionID === undefined) {
    throw new Error(
      `Pseudowire ${p.metadata.name}: a cross-cluster pseudowire needs sessionID and peerSessionID`,
    );
  }
  // the cookies swap roles, and one given in a single direction stays in that direction only
  const { cookie, peerCookie, ipam: _ipam, allowedNamespaces: _allowed, ...rest } = spec;
  return {
    apiVersion: API_VERSION,
    kind: 'Pseudowire',
    metadata: { name: p.metadata.name, ...(p.metadata.namespace ? { namespace: p.metadata.namespace } : {}) },
    spec: {
      ...rest,
      tunnelRef: { name: tunnelName },
      sessionID: spec.peerSessionID,
      peerSessionID: spec.sessionID,
      ...(peerCookie ? { cookie: peerCookie } : {}),
      ...(cookie ? { peerCookie: cookie } : {}),
    },
  };
}

/** Mirror every L2TPTunnel and Pseudowire in a multi-document YAML text. */
export function mirrorManifest(text: string, o: MirrorOptions): string {
  const docs = YAML.parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((d): d is Obj => !!d);
  const tunnels = docs.filter((d) => d.kind === 'L2TPTunnel') as L2TPTunnel[];
  if (tunnels.length === 0) throw new Error('no L2TPTunnel in the input');
  const names = new Map<string, string>();
  const out: Obj[] = [];
  for (const t of tunnels) {
    const m = mirrorTunnel(t, tunnels.length === 1 ? o : { ...o, tunnelName: t.metadata.name });
    names.set(t.metadata.name, m.metadata.name);
    out.push(m);
  }
  const notes: string[] = [];
  /** mirrored tunnel name -> the namespaces of the pseudowires mirrored onto it ('' for one without) */
  const users = new Map<string, Set<string>>([...names.values()].map((n) => [n, new Set<string>()]));
  for (const p of docs.filter((d) => d.kind === 'Pseudowire') as Pseudowire[]) {
    const tn = names.get(p.spec.tunnelRef.name);
    if (!tn)
      throw new Error(
        `Pseudowire ${p.metadata.name}: its tunnel ${p.spec.tunnelRef.name} is not in the input`,
      );
    out.push(mirrorPseudowire(p, tn));
    users.get(tn)!.add(p.metadata.namespace ?? '');
    const key = p.metadata.namespace ? `${p.metadata.namespace}/${p.metadata.name}` : p.metadata.name;
    if (p.spec.ipam !== undefined) {
      notes.push(
        `# Pseudowire ${key}: spec.ipam is not copied: both sides are one segment, so the other side's pods need addresses of its own (a range this side does not use); add its spec.ipam\n`,
      );
    }
    if (p.spec.allowedNamespaces?.length) {
      notes.push(
        `# Pseudowire ${key}: spec.allowedNamespaces is not copied: it lets pods of other namespaces of this cluster attach; there only pods of its own namespace attach unless that cluster lists more\n`,
      );
    }
  }
  // which of its namespaces may use the tunnel is the other cluster's decision, never this one's
  const tunnelNotes = [...users].map(([tn, nss]) => {
    const named = [...nss].filter(Boolean).sort();
    const where = named.length ? `are in ${named.join(', ')}` : 'go in the namespace you apply them to';
    const then = nss.size
      ? `the Pseudowires here ${where}: list those it shares the tunnel with, or they are refused (TunnelNotAllowed)`
      : 'no Pseudowire may use the tunnel until it lists their namespaces';
    return `# L2TPTunnel ${tn}: spec.allowedNamespaces is not copied (it names namespaces of this cluster; which of the other cluster's may use the tunnel is that cluster's decision) and is left empty: ${then}\n`;
  });
  const secretNote = out.some((d) => JSON.stringify(d).includes('secretRef'))
    ? '# cookies come from Secrets: create them in the other cluster with the same values (roles are swapped here)\n'
    : '';
  return `# mirrored by kube-l2tp-operator mirror: the other side of the link\n${tunnelNotes.join('')}${secretNote}${notes.join('')}${out.map((d) => YAML.stringify(d)).join('---\n')}`;
}
