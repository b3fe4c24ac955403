#!/usr/bin/env node
// A stand-alone CNI server with a file-backed resolver: the agent's CNI half without the rest of the
// agent. Tests and the benchmark run one per "node" (network namespace):
//   node dist/cmd/cni/dev-agent.js --socket PATH --pseudowires FILE [--state-dir DIR] [--cni-path P]
// Prints "ready" on stdout once listening; stops on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { createLogger } from '../../lib/log.js';
import { startCniServer } from './server.js';
import { FileResolver } from './static-resolver.js';

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    pseudowires: { type: 'string' },
    'state-dir': { type: 'string' },
    'cni-path': { type: 'string' },
  },
});
if (!values.socket || !values.pseudowires) {
  console.error('usage: dev-agent --socket PATH --pseudowires FILE [--state-dir DIR] [--cni-path P]');
  process.exit(2);
}
const logger = createLogger({
  name: 'cni-agent',
  destination: 'stderr',
  level: process.env.LOG_LEVEL ?? 'warn',
});
const server = await startCniServer({
  socketPath: values.socket,
  resolver: new FileResolver(values.pseudowires),
  logger,
  ...(values['state-dir'] ? { stateDir: values['state-dir'] } : {}),
  ...(values['cni-path'] ? { cniPath: values['cni-path'] } : {}),
});
process.stdout.write('ready\n');
const stop = (): void => {
  void server.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
