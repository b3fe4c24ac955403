// The limits a user can reach, in one place: the CRD schemas carry them as maxItems, the operator
// enforces them with a status that names the limit (reasons TunnelFull, NodeStateFull), and the docs
// quote them.

/** Sessions one tunnel carries: the userspace datapath's per-tunnel session table holds this many. */
export const MAX_SESSIONS_PER_TUNNEL = 4096;

/**
 * Tunnels plus sessions in one L2TPNodeState. The object holds the spec (about 250 bytes a session)
 * and the agent's status (about 230 bytes a session it lists: every one on a small node, at most
 * MAX_SESSIONS_LISTED_IN_STATUS on a large one) and must stay within etcd's request limit (1.5 MiB
 * by default); a node with more gets more node states (MAX_NODE_STATE_SHARDS).
 */
export const MAX_NODE_STATE_ITEMS = 3072;

/**
 * Node states (shards, lib/api/node-shards.ts) one node may have: a node carries up to this many
 * times MAX_NODE_STATE_ITEMS tunnels and sessions.
 */
export const MAX_NODE_STATE_SHARDS = 8;

/**
 * Bytes of one node state's spec: with names of ordinary length the item limit keeps well inside
 * this; long namespace and pseudowire names reach it first, and then it is what refuses.
 */
export const MAX_NODE_STATE_SPEC_BYTES = 900 * 1024;

/**
 * Sessions up to which an agent reports per-session counters in its node state's status as well as
 * in its metrics. Counters are most of a session's status (about 300 of 450 bytes), so a larger node
 * reports them in metrics only (kube_l2tp_session_*), which keeps its node state within the limits
 * above.
 */
export const MAX_SESSIONS_WITH_STATUS_COUNTERS = 256;

/**
 * Sessions up to which the agent lists every session in its node state's status. A larger node
 * lists at most this many, those not Up as their spec says first; the others are reported per tunnel
 * as ranges of session IDs (status.tunnels[].up, and status.tunnels[].unlisted for those not Up,
 * lib/api/node-status.ts), a few bytes a tunnel instead of about 230 a session, so the status stays
 * small whatever the number of sessions, and whatever the number that fail at once.
 */
export const MAX_SESSIONS_LISTED_IN_STATUS = 256;

/** Bytes of a message the agent writes for a group of sessions (status.tunnels[].unlisted). */
export const MAX_STATUS_MESSAGE_BYTES = 1024;

/** MTU groups in one tunnel's compact status; sessions beyond them are listed one by one. */
export const MAX_UP_GROUPS_PER_TUNNEL = 16;
