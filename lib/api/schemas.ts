// The one schema source of the kube-l2tp API (group l2tp.kube-l2tp.io, version v1alpha1).
// These zod schemas generate the CRDs in crds/ (lib/api/crdgen.ts; rules that span fields are CEL
// `x-kubernetes-validations` attached with .meta()), so the API server validates every object; the
// operator and agent use the inferred types (mirror parses its input file with them). Field rules
// reuse lib/wire/session.ts where the vocabulary is the same.
import { z } from 'zod';
import { U32_MAX } from '../wire/session.js';
import {
  MAX_NODE_STATE_ITEMS,
  MAX_SESSIONS_PER_TUNNEL,
  MAX_STATUS_MESSAGE_BYTES,
  MAX_UP_GROUPS_PER_TUNNEL,
} from './limits.js';

export const GROUP = 'l2tp.kube-l2tp.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}
const cel = (...rules: CelRule[]) => ({ 'x-kubernetes-validations': rules });
const immutable = (what: string): CelRule => ({ rule: 'self == oldSelf', message: `${what} is immutable` });

// ---- shared pieces -------------------------------------------------------------------------------

/** Non-zero 32-bit L2TP ID (tunnel or session). Same bounds as lib/wire idSchema. */
export const apiIdSchema = z
  .number()
  .int()
  .min(1, 'must be non-zero (0 is reserved for control messages)')
  .max(U32_MAX, 'must fit in 32 bits')
  .meta({ description: 'Non-zero 32-bit L2TP ID (1-4294967295).', format: 'int64' });

export const apiPortSchema = z.number().int().min(1).max(65535).meta({ description: 'UDP port (1-65535).' });

export const ipAddressSchema = z
  .string()
  .max(45)
  .meta({
    description: 'IPv4 or IPv6 address.',
    ...cel({ rule: 'isIP(self)', message: 'must be an IPv4 or IPv6 address, like 192.0.2.1 or 2001:db8::1' }),
  });

const dnsName = z.string().min(1).max(253);

/**
 * A string matching `re`, checked by zod (refine) and by the apiserver (CEL): a CEL rule, unlike an
 * OpenAPI pattern, answers with a message a person understands.
 */
const matching = (s: z.ZodString, re: RegExp, message: string) =>
  s
    .refine((v) => re.test(v), message)
    .meta({
      ...cel({ rule: `self.matches('${re.source.replaceAll('\\', '\\\\')}')`, message }),
    });

/** A namespace name (RFC 1123 label), or "*" for every namespace. */
const namespaceOrAll = matching(
  z.string().max(63),
  /^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$/,
  'must be a namespace name or "*"',
);
const namespaceList = (description: string) =>
  z.array(namespaceOrAll).max(256).meta({ description, 'x-kubernetes-list-type': 'set' }).optional();

const objectName = dnsName.meta({ description: 'Name of an object.' });

export const conditionSchema = z.object({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().max(1024).optional(),
  message: z.string().max(32768).optional(),
  lastTransitionTime: z.string().meta({ format: 'date-time' }).optional(),
  observedGeneration: z.number().int().min(0).optional(),
});
export type Condition = z.infer<typeof conditionSchema>;
const conditionsSchema = z
  .array(conditionSchema)
  .max(16)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });

// ---- L2TPTunnel (cluster-scoped) -------------------------------------------------------------------

export const tunnelLocalSchema = z
  .object({
    node: objectName.meta({ description: 'Node that terminates this side of the tunnel.' }),
    address: ipAddressSchema
      .meta({ description: "Local underlay address; default: the node's InternalIP." })
      .optional(),
    tunnelID: apiIdSchema
      .meta({ description: 'Local tunnel ID; allocated when omitted (in-cluster peers).' })
      .optional(),
    udpPort: apiPortSchema
      .meta({ description: 'Local UDP port (encapsulation UDP); allocated when omitted.' })
      .optional(),
  })
  .meta({ ...cel({ ...immutable('local.node'), rule: 'self.node == oldSelf.node' }) });

export const externalPeerSchema = z
  .object({
    address: ipAddressSchema.meta({
      description: 'Address of the router or of the node in the other cluster.',
    }),
    tunnelID: apiIdSchema.meta({ description: "The peer's own tunnel ID (our peer_tunnel_id)." }),
    udpPort: apiPortSchema.meta({ description: "The peer's UDP port (our udp_dport)." }).optional(),
  })
  .meta({ description: 'A peer outside this cluster: a router with a static xconnect, or another cluster.' });

export const tunnelPeerSchema = z
  .object({
    node: objectName.meta({ description: 'In-cluster peer node.' }).optional(),
    address: ipAddressSchema
      .meta({ description: 'Peer node underlay address; default: its InternalIP.' })
      .optional(),
    tunnelID: apiIdSchema
      .meta({ description: 'Tunnel ID on the peer node; allocated when omitted.' })
      .optional(),
    udpPort: apiPortSchema
      .meta({ description: 'UDP port on the peer node; allocated when omitted.' })
      .optional(),
    external: externalPeerSchema.optional(),
  })
  .meta({
    ...cel(
      {
        rule: 'has(self.node) != has(self.external)',
        message: 'peer must set exactly one of node (in-cluster peer) or external (router or other cluster)',
      },
      {
        rule: '!has(self.external) || (!has(self.address) && !has(self.tunnelID) && !has(self.udpPort))',
        message: 'with an external peer, give its address, tunnelID and udpPort inside peer.external',
      },
    ),
  });

export const tunnelSpecSchema = z
  .object({
    encapsulation: z
      .enum(['UDP', 'IP'])
      .default('UDP')
      .meta({ description: 'UDP (default) or IP (protocol 115, no UDP header).' }),
    local: tunnelLocalSchema,
    peer: tunnelPeerSchema,
    allowedNamespaces: namespaceList(
      'Namespaces whose Pseudowires may use this tunnel ("*": every namespace). A tunnel is shared only on ' +
        'purpose: with none listed, every Pseudowire that references it is refused.',
    ),
    // On by default, unlike `ip l2tp` (udp_csum off): the kernel allows UDP GSO/GRO only for
    // checksummed datagrams, which triples the userspace datapath, and every IPv4 receiver (kernel
    // l2tp_eth included) accepts checksummed datagrams whatever its own setting.
    udpChecksum: z
      .boolean()
      .default(true)
      .meta({
        description:
          'UDP checksums on transmit. Default true, unlike ip l2tp: the userspace datapath segments only ' +
          'checksummed datagrams in the kernel, and every receiver accepts them (the ebpf datapath then sums ' +
          'each frame, without TSO on the session device). false sends checksum 0, also over IPv6, where ' +
          'the peer must accept zero checksums.',
      }),
  })
  .meta({
    ...cel(
      { ...immutable('encapsulation'), rule: 'self.encapsulation == oldSelf.encapsulation' },
      {
        rule:
          "self.encapsulation == 'UDP' || (!has(self.local.udpPort) && !has(self.peer.udpPort) && " +
          '!(has(self.peer.external) && has(self.peer.external.udpPort)))',
        message: 'udpPort is only valid with encapsulation UDP',
      },
      {
        rule: '!has(self.peer.external) || has(self.local.tunnelID)',
        message:
          'a tunnel to an external peer needs an explicit local.tunnelID (the other side uses it as peer tunnel ID)',
      },
      {
        rule:
          "!has(self.peer.external) || self.encapsulation != 'UDP' || " +
          '(has(self.local.udpPort) && has(self.peer.external.udpPort))',
        message: 'a UDP tunnel to an external peer needs local.udpPort and peer.external.udpPort',
      },
      {
        rule: '!has(self.peer.node) || self.peer.node != self.local.node',
        message: 'local.node and peer.node must be different nodes',
      },
    ),
  });

export const tunnelEndpointStatusSchema = z.object({
  node: z.string(),
  tunnelID: z.number().int().optional(),
  state: z.string().optional(),
  message: z.string().optional(),
});

export const tunnelStatusSchema = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  tunnelID: apiIdSchema
    .meta({ description: 'Tunnel ID on the local node (allocated or from spec).' })
    .optional(),
  peerTunnelID: apiIdSchema.meta({ description: 'Tunnel ID on the peer side.' }).optional(),
  udpPort: apiPortSchema.optional(),
  peerUDPPort: apiPortSchema.optional(),
  localAddress: z.string().optional(),
  peerAddress: z.string().optional(),
  pseudowires: z.number().int().min(0).optional(),
  endpoints: z.array(tunnelEndpointStatusSchema).optional(),
  conditions: conditionsSchema.optional(),
});

// ---- Pseudowire (namespaced) -----------------------------------------------------------------------

export const cookieSourceSchema = z
  .object({
    value: z
      .string()
      .max(16)
      .meta({
        description: 'Cookie as hex digits (8 or 16). Cookies travel in clear text on the wire.',
        ...cel({
          rule: "self.matches('^[0-9a-fA-F]{8}$') || self.matches('^[0-9a-fA-F]{16}$')",
          message: 'a cookie must be 4 or 8 bytes: 8 or 16 hex digits',
        }),
      })
      .optional(),
    secretRef: z
      .object({
        name: matching(
          z.string().min(1).max(253),
          /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
          'must be a Secret name (lowercase letters, digits, "-" and ".")',
        ),
        key: matching(
          z.string().min(1).max(253),
          /^[-._a-zA-Z0-9]+$/,
          'must be a Secret key (letters, digits, "-", "_" and ".")',
        ).default('cookie'),
      })
      .meta({ description: "A Secret in the Pseudowire's namespace holding the hex cookie." })
      .optional(),
  })
  .meta({
    ...cel({
      rule: 'has(self.value) != has(self.secretRef)',
      message: 'give exactly one of value or secretRef',
    }),
  });

/**
 * IPAM delegates a Pseudowire, or a network config, may name. They run inside the node agent
 * (privileged, host network), so only these reference plugins, found in the node's CNI bin dir, are allowed.
 */
export const IPAM_TYPES = ['host-local', 'static', 'whereabouts', 'dhcp'] as const;

export const IPAM_FILE_KEYS_MESSAGE =
  'dataDir and resolvConf name files on the node: the node agent keeps IPAM state in its own directory, remove them';

/**
 * Whether an ipam object names node files. The plugins decode it with Go's encoding/json, which also
 * takes a key that differs only in case (and folds "ſ" to "s"), so "DataDir" and "reſolvConf" count too.
 */
export function namesNodeFiles(ipam: unknown): boolean {
  if (ipam === null || typeof ipam !== 'object' || Array.isArray(ipam)) return false;
  return Object.keys(ipam).some((k) => {
    const folded = k.toUpperCase().toLowerCase();
    return folded === 'datadir' || folded === 'resolvconf';
  });
}

/**
 * whereabouts' keys that name files on the node: `kubernetes` (its `kubeconfig`: whose identity
 * whereabouts acts as; `k8s_api_root`, where releases before 0.5 sent that identity's token),
 * `configuration_path` (a configuration file to read), `log_file` (a file to append to) and the etcd
 * client's key and certificates of older releases. Pointing them at another component's files is an
 * escalation; the cluster admin sets them in whereabouts' own configuration file on the node.
 */
export const WHEREABOUTS_FILE_KEYS = [
  'kubernetes',
  'configuration_path',
  'log_file',
  'etcd_key_file',
  'etcd_cert_file',
  'etcd_ca_cert_file',
] as const;

export const WHEREABOUTS_FILE_KEYS_MESSAGE =
  'whereabouts: kubernetes (its kubeconfig), configuration_path, log_file and etcd_*_file name files on the ' +
  "node: whereabouts takes them from its own configuration file on the node (whereabouts.d/whereabouts.conf in the node's CNI configuration directory, kept by the cluster admin), remove them";

/** The whereabouts file keys an ipam object of type whereabouts carries, in any spelling Go's decoder takes. */
export function whereaboutsFileKeys(ipam: unknown): string[] {
  if (ipam === null || typeof ipam !== 'object' || Array.isArray(ipam)) return [];
  if ((ipam as { type?: unknown }).type !== 'whereabouts') return [];
  const keys: readonly string[] = WHEREABOUTS_FILE_KEYS;
  return Object.keys(ipam).filter((k) => keys.includes(k.toUpperCase().toLowerCase()));
}

const isObject = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The rules of an ipam object, for a list of allowed types: spec.ipam and the CNI network config's
 * "ipam" (datapath/cni/config.ts) both use them. The refinement is the CEL rule's twin (the apiserver
 * checks the CRD, zod whatever reaches the agent); it runs even when a field has the wrong type.
 */
export function ipamSchemaFor(types: readonly [string, ...string[]]) {
  return z
    .looseObject({
      type: z
        .enum(types, {
          error: (i) =>
            `${JSON.stringify(i.input)} is not allowed: IPAM delegates run inside the kube-l2tp node agent, ` +
            `which runs only ${types.join(', ')}: name one of them`,
        })
        .meta({ description: `IPAM plugin: ${types.join(', ')}.` }),
      dataDir: z.string().optional(),
      resolvConf: z.string().optional(),
      // declared with whereabouts' types so that the CRD's CEL rule can name them (refused with type whereabouts)
      kubernetes: z.looseObject({}).optional().meta({ 'x-kubernetes-preserve-unknown-fields': true }),
      configuration_path: z.string().optional(),
      log_file: z.string().optional(),
      etcd_key_file: z.string().optional(),
      etcd_cert_file: z.string().optional(),
      etcd_ca_cert_file: z.string().optional(),
    })
    .refine((v) => !namesNodeFiles(v), { message: IPAM_FILE_KEYS_MESSAGE, when: (p) => isObject(p.value) })
    .refine((v) => whereaboutsFileKeys(v).length === 0, {
      message: WHEREABOUTS_FILE_KEYS_MESSAGE,
      when: (p) => isObject(p.value),
    });
}

export const ipamSchema = ipamSchemaFor(IPAM_TYPES).meta({
  description:
    'IPAM configuration of the generated NetworkAttachmentDefinition (the CNI "ipam" object); its other ' +
    'keys are passed to the plugin as they are.',
  'x-kubernetes-preserve-unknown-fields': true,
  ...cel(
    { rule: '!has(self.dataDir) && !has(self.resolvConf)', message: IPAM_FILE_KEYS_MESSAGE },
    {
      rule: `self.type != 'whereabouts' || (${WHEREABOUTS_FILE_KEYS.map((k) => `!has(self.${k})`).join(' && ')})`,
      message: WHEREABOUTS_FILE_KEYS_MESSAGE,
    },
  ),
});

export const pseudowireSpecSchema = z
  .object({
    tunnelRef: z
      .object({ name: objectName.meta({ description: 'Name of the L2TPTunnel.' }) })
      .meta({ ...cel(immutable('tunnelRef')) }),
    sessionID: apiIdSchema
      .meta({
        description: 'Local session ID. Allocated for in-cluster tunnels; required for external peers.',
      })
      .optional(),
    peerSessionID: apiIdSchema.meta({ description: "The peer's session ID." }).optional(),
    cookie: cookieSourceSchema.meta({ description: 'Cookie we send (4 or 8 bytes).' }).optional(),
    peerCookie: cookieSourceSchema.meta({ description: 'Cookie we expect from the peer.' }).optional(),
    l2SpecificSublayer: z
      .enum(['Default', 'None'])
      .default('Default')
      .meta({ description: 'Default (Linux/iproute2) or None (Cisco, go-l2tp).' }),
    sequencing: z
      .object({
        send: z.boolean().default(false),
        requireReceive: z.boolean().default(false),
        reorderTimeoutMs: z.number().int().min(0).max(60000).default(0),
      })
      .optional(),
    mtu: z
      .number()
      .int()
      .min(68)
      .max(65535)
      .meta({ description: 'MTU of the pseudowire interface; derived from the underlay when omitted.' })
      .optional(),
    attachment: z
      .object({
        mode: z.enum(['Bridge', 'Exclusive']).default('Bridge').meta({
          description: 'Bridge: pods attach by veth to a bridge; Exclusive: one pod gets the interface.',
        }),
      })
      .default({ mode: 'Bridge' }),
    ipam: ipamSchema.optional(),
    allowedNamespaces: namespaceList(
      'Namespaces besides the Pseudowire\'s own whose pods may attach to it ("*": every namespace); ' +
        'by default only pods of its own namespace attach.',
    ),
  })
  .meta({
    ...cel(
      {
        rule: 'has(self.sessionID) == has(self.peerSessionID)',
        message: 'give both sessionID and peerSessionID, or neither (then they are allocated)',
      },
      {
        rule:
          "self.l2SpecificSublayer == 'Default' || !has(self.sequencing) || " +
          '(!self.sequencing.send && !self.sequencing.requireReceive)',
        message: 'sequencing needs l2SpecificSublayer Default (the sequence number lives in the sublayer)',
      },
    ),
  });

export const endpointStateSchema = z.enum(['Pending', 'Up', 'Down', 'Failed', 'Unknown']);

export const pseudowireEndpointStatusSchema = z.object({
  node: z.string(),
  sessionID: z.number().int().optional(),
  peerSessionID: z.number().int().optional(),
  interface: z.string().optional(),
  state: z.string().optional(),
  mtu: z.number().int().optional(),
  message: z.string().optional(),
});

export const pseudowireStatusSchema = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  tunnel: z.string().optional(),
  sessionID: apiIdSchema.meta({ description: 'Session ID on the local node of the tunnel.' }).optional(),
  peerSessionID: apiIdSchema.meta({ description: 'Session ID on the peer side.' }).optional(),
  mtu: z.number().int().optional(),
  endpoints: z.array(pseudowireEndpointStatusSchema).optional(),
  networkAttachmentDefinition: z.string().optional(),
  conditions: conditionsSchema.optional(),
});

// ---- L2TPNodeState (cluster-scoped, one per node, same name) ------------------------------------

export const nodeSessionSpecSchema = z.object({
  pseudowire: z.object({ namespace: z.string(), name: z.string() }),
  sessionId: apiIdSchema,
  peerSessionId: apiIdSchema,
  ifname: z.string().min(1).max(15),
  cookie: z.string().optional(),
  peerCookie: z.string().optional(),
  l2specType: z.enum(['none', 'default']),
  sendSequence: z.boolean(),
  requireSequence: z.boolean(),
  reorderTimeoutMs: z.number().int().min(0),
  mtu: z.number().int().min(68).max(65535).optional(),
  mode: z.enum(['bridge', 'exclusive']),
  /** Namespaces besides the pseudowire's own whose pods the CNI plugin attaches ("*": all). */
  allowedNamespaces: z.array(z.string()).optional(),
});
export type NodeSessionSpec = z.infer<typeof nodeSessionSpecSchema>;

export const nodeTunnelSpecSchema = z.object({
  name: z.string().meta({ description: 'The L2TPTunnel this comes from.' }),
  tunnelId: apiIdSchema,
  peerTunnelId: apiIdSchema,
  encap: z.enum(['udp', 'ip']),
  local: z.string(),
  remote: z.string(),
  udpSourcePort: apiPortSchema.optional(),
  udpDestinationPort: apiPortSchema.optional(),
  udpChecksum: z.boolean(),
  sessions: z.array(nodeSessionSpecSchema).max(MAX_SESSIONS_PER_TUNNEL),
});
export type NodeTunnelSpec = z.infer<typeof nodeTunnelSpecSchema>;

export const nodeStateSpecSchema = z
  .object({
    nodeName: z.string(),
    tunnels: z.array(nodeTunnelSpecSchema).max(MAX_NODE_STATE_ITEMS),
  })
  .meta({
    description: 'Written only by the operator: everything this node must have, in ip l2tp vocabulary.',
  });
export type NodeStateSpec = z.infer<typeof nodeStateSpecSchema>;

const i64 = z.number().int().min(0).meta({ format: 'int64' });
export const sessionCountersSchema = z.object({
  txPackets: i64,
  txBytes: i64,
  txErrors: i64,
  rxPackets: i64,
  rxBytes: i64,
  rxErrors: i64,
  drops: z.record(z.string(), i64).optional(),
});

const sessionIdRangesSchema = z
  .string()
  .max(65536)
  .meta({ description: 'Session IDs as ascending ranges, e.g. "1-1000,1005".' });

export const nodeTunnelStatusSchema = z.object({
  name: z.string(),
  tunnelId: z.number().int(),
  state: z.enum(['Pending', 'Ready', 'Failed']),
  message: z.string().optional(),
  up: z
    .array(
      z.object({
        sessionIds: sessionIdRangesSchema,
        mtu: z.number().int().optional(),
      }),
    )
    .max(MAX_UP_GROUPS_PER_TUNNEL)
    .optional()
    .meta({
      description:
        'On a node with many sessions: the sessions of this tunnel that are Up as the spec says (interface and pseudowire as in the spec), grouped by MTU; status.sessions and unlisted hold the others.',
    }),
  unlisted: z
    .array(
      z.object({
        sessionIds: sessionIdRangesSchema,
        state: endpointStateSchema,
        message: z
          .string()
          .max(MAX_STATUS_MESSAGE_BYTES)
          .optional()
          .meta({ description: 'The message of the first session of the group.' }),
      }),
    )
    .max(endpointStateSchema.options.length)
    .optional()
    .meta({
      description:
        'On a node with many sessions: those of this tunnel that neither status.sessions nor up holds (sessions not Up beyond the list), grouped by state.',
    }),
});

export const nodeSessionStatusSchema = z.object({
  pseudowire: z.object({ namespace: z.string(), name: z.string() }),
  tunnelId: z.number().int(),
  sessionId: z.number().int(),
  ifname: z.string(),
  ifindex: z.number().int().optional(),
  state: endpointStateSchema,
  mtu: z.number().int().optional(),
  message: z.string().optional(),
  counters: sessionCountersSchema.optional(),
});
export type NodeSessionStatus = z.infer<typeof nodeSessionStatusSchema>;

export const nodeStateStatusSchema = z
  .object({
    observedGeneration: z.number().int().min(0).optional(),
    backend: z.enum(['kernel', 'ebpf', 'userspace']).optional(),
    backendReason: z.string().optional(),
    agentVersion: z.string().optional(),
    tunnels: z.array(nodeTunnelStatusSchema).max(MAX_NODE_STATE_ITEMS).optional(),
    sessions: z.array(nodeSessionStatusSchema).max(MAX_NODE_STATE_ITEMS).optional(),
    lastError: z.object({ time: z.string().meta({ format: 'date-time' }), message: z.string() }).optional(),
    conditions: conditionsSchema.optional(),
  })
  .meta({ description: "Written only by the node's agent." });
export type NodeStateStatus = z.infer<typeof nodeStateStatusSchema>;

/** Whether pods or Pseudowires of `namespace` may use an object that lists `allowed`. */
export function namespaceAllowed(allowed: readonly string[] | undefined, namespace: string): boolean {
  return (allowed ?? []).some((n) => n === '*' || n === namespace);
}

// ---- object types ---------------------------------------------------------------------------------

export type TunnelSpec = z.output<typeof tunnelSpecSchema>;
export type TunnelStatus = z.infer<typeof tunnelStatusSchema>;
export type PseudowireSpec = z.output<typeof pseudowireSpecSchema>;
export type PseudowireStatus = z.infer<typeof pseudowireStatusSchema>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
    blockOwnerDeletion?: boolean;
  }[];
}

export interface KObject<S = unknown, T = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: S;
  status?: T;
}
export type L2TPTunnel = KObject<TunnelSpec, TunnelStatus> & { spec: TunnelSpec };
export type Pseudowire = KObject<PseudowireSpec, PseudowireStatus> & { spec: PseudowireSpec };
export type L2TPNodeState = KObject<NodeStateSpec, NodeStateStatus>;
