// zod -> structural OpenAPI v3 -> CustomResourceDefinition. The schemas in schemas.ts are the only
// source; crds/*.yaml is generated from here by scripts/gen-crds.ts and checked in CI.
import { z } from 'zod';
import YAML from 'yaml';
import {
  GROUP,
  VERSION,
  nodeStateSpecSchema,
  nodeStateStatusSchema,
  pseudowireSpecSchema,
  pseudowireStatusSchema,
  tunnelSpecSchema,
  tunnelStatusSchema,
} from './schemas.js';

type Json = Record<string, unknown>;
const SAFE = 9007199254740991;

/** Rewrite a JSON Schema from zod into the structural subset the apiserver accepts. */
export function toStructural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toStructural);
  if (node === null || typeof node !== 'object') return node;
  const src = node as Json;
  const out: Json = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === '$schema' || k === 'propertyNames' || k === 'id') continue;
    if (k === 'additionalProperties' && v === false) continue; // unknown fields are pruned anyway
    // a structural schema says "any other keys" with x-kubernetes-preserve-unknown-fields instead
    if (k === 'additionalProperties' && src['x-kubernetes-preserve-unknown-fields'] === true) continue;
    if (k === 'pattern' && typeof src.format === 'string') continue;
    // the apiserver stores no empty `properties`: writing one would differ from what it returns
    if (k === 'properties' && Object.keys(v as Json).length === 0) continue;
    if ((k === 'minimum' && v === -SAFE) || (k === 'maximum' && v === SAFE)) continue;
    if (k === 'properties' || k === 'x-kubernetes-validations' || k === 'enum' || k === 'required') {
      out[k] =
        k === 'properties'
          ? Object.fromEntries(Object.entries(v as Json).map(([pk, pv]) => [pk, toStructural(pv)]))
          : v;
      continue;
    }
    out[k] = toStructural(v);
  }
  if (
    out.type === 'integer' &&
    out.format === undefined &&
    typeof out.maximum === 'number' &&
    out.maximum > 2 ** 31
  ) {
    out.format = 'int64';
  }
  return out;
}

export function openAPI(schema: z.ZodType): Json {
  return toStructural(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw' })) as Json;
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date' | 'number' | 'boolean';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface KindDef {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  columns: PrinterColumn[];
}

const readyCol: PrinterColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
};
const reasonCol: PrinterColumn = {
  name: 'Reason',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  priority: 1,
};
const ageCol: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export const KINDS: KindDef[] = [
  {
    kind: 'L2TPTunnel',
    plural: 'l2tptunnels',
    singular: 'l2tptunnel',
    shortNames: ['l2tun', 'tun'],
    scope: 'Cluster',
    description: 'An L2TPv3 tunnel between two nodes, or between a node and an external peer.',
    spec: tunnelSpecSchema,
    status: tunnelStatusSchema,
    columns: [
      { name: 'Encap', type: 'string', jsonPath: '.spec.encapsulation' },
      { name: 'Local', type: 'string', jsonPath: '.spec.local.node' },
      { name: 'Peer', type: 'string', jsonPath: '.status.peerAddress' },
      { name: 'TunnelID', type: 'integer', jsonPath: '.status.tunnelID' },
      { name: 'PeerTunnelID', type: 'integer', jsonPath: '.status.peerTunnelID', priority: 1 },
      { name: 'Pseudowires', type: 'integer', jsonPath: '.status.pseudowires' },
      { name: 'Namespaces', type: 'string', jsonPath: '.spec.allowedNamespaces', priority: 1 },
      readyCol,
      reasonCol,
      ageCol,
    ],
  },
  {
    kind: 'Pseudowire',
    plural: 'pseudowires',
    singular: 'pseudowire',
    shortNames: ['pw'],
    scope: 'Namespaced',
    description: 'An L2TPv3 ethernet pseudowire (session) in a tunnel; pods attach to it through Multus.',
    spec: pseudowireSpecSchema,
    status: pseudowireStatusSchema,
    columns: [
      { name: 'Tunnel', type: 'string', jsonPath: '.spec.tunnelRef.name' },
      { name: 'Session', type: 'integer', jsonPath: '.status.sessionID' },
      { name: 'PeerSession', type: 'integer', jsonPath: '.status.peerSessionID' },
      { name: 'Mode', type: 'string', jsonPath: '.spec.attachment.mode' },
      { name: 'MTU', type: 'integer', jsonPath: '.status.mtu', priority: 1 },
      readyCol,
      reasonCol,
      ageCol,
    ],
  },
  {
    kind: 'L2TPNodeState',
    plural: 'l2tpnodestates',
    singular: 'l2tpnodestate',
    shortNames: ['l2ns'],
    scope: 'Cluster',
    description:
      'Per-node desired state (spec, written by the operator) and observed state (status, written by that node agent).',
    spec: nodeStateSpecSchema,
    status: nodeStateStatusSchema,
    columns: [
      { name: 'Node', type: 'string', jsonPath: '.spec.nodeName' },
      { name: 'Backend', type: 'string', jsonPath: '.status.backend' },
      { name: 'Generation', type: 'integer', jsonPath: '.metadata.generation' },
      { name: 'Observed', type: 'integer', jsonPath: '.status.observedGeneration' },
      readyCol,
      reasonCol,
      ageCol,
    ],
  },
];

export function crdFor(k: KindDef): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${k.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'kube-l2tp', 'app.kubernetes.io/part-of': 'kube-l2tp' },
    },
    spec: {
      group: GROUP,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: k.shortNames,
        categories: ['kube-l2tp'],
      },
      scope: k.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: k.description,
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: openAPI(k.spec),
                status: openAPI(k.status),
              },
              required: ['spec'],
            },
          },
        },
      ],
    },
  };
}

export function allCRDs(): Json[] {
  return KINDS.map(crdFor);
}

const HEADER = '# Generated by scripts/gen-crds.ts from lib/api/schemas.ts. Do not edit.\n';

/** File name -> YAML text for crds/. */
export function renderCRDFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const k of KINDS) {
    files.set(`${GROUP}_${k.plural}.yaml`, HEADER + YAML.stringify(crdFor(k), { lineWidth: 0 }));
  }
  return files;
}
