// The options every unit test gives an Agent: node n1, a memory backend, quiet logs, no resync
// timer in the way. Tests add or override what they are about.
import { createAgentMetrics } from '../../datapath/agent/metrics.js';
import type { AgentOptions } from '../../datapath/agent/agent.js';
import type { NodeStateSource } from '../../datapath/agent/nodestate-source.js';
import type { Backend } from '../../datapath/backend/types.js';
import type { L2TPNodeState, NodeStateSpec, NodeStateStatus } from '../../lib/api/schemas.js';
import { silentLogger } from '../../lib/log.js';

export function testAgentOptions(source: NodeStateSource, backend: Backend): AgentOptions {
  return {
    nodeName: 'n1',
    source,
    backend,
    backendReason: 'test',
    metrics: createAgentMetrics('userspace', 'test'),
    logger: silentLogger(),
    version: 'test',
    resyncMs: 3_600_000,
  };
}

/** A node-state source that always reads `obj` and keeps every status the agent writes in `written`. */
export function fixedSource(obj: L2TPNodeState, written: NodeStateStatus[] = []): NodeStateSource {
  return {
    get: async () => [obj],
    watch: () => undefined,
    writeStatus: async (_name, status) => {
      written.push(status);
    },
    stop: () => undefined,
  };
}

type TunnelSpec = NodeStateSpec['tunnels'][number];

/** A UDP tunnel "a-to-b" from 10.0.0.1 to 10.0.0.2 on port 1701, as a node state's spec holds it. */
export function udpTunnel(tunnelId: number, over: Partial<TunnelSpec> = {}): TunnelSpec {
  return {
    name: 'a-to-b',
    tunnelId,
    peerTunnelId: tunnelId + 1,
    encap: 'udp',
    local: '10.0.0.1',
    remote: '10.0.0.2',
    udpSourcePort: 1701,
    udpDestinationPort: 1701,
    udpChecksum: false,
    sessions: [],
    ...over,
  };
}
