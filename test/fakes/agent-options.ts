// The options every unit test gives an Agent: node n1, a memory backend, quiet logs, no resync
// timer in the way. Tests add or override what they are about.
import { createAgentMetrics } from '../../datapath/agent/metrics.js';
import type { AgentOptions } from '../../datapath/agent/agent.js';
import type { NodeStateSource } from '../../datapath/agent/nodestate-source.js';
import type { Backend } from '../../datapath/backend/types.js';
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
