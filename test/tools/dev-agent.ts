#!/usr/bin/env node
// A stand-alone CNI server with a file-backed resolver: the agent's CNI half without the rest of the
// agent. Tests and the benchmark run one per "node" (network namespace):
//   node dist/test/tools/dev-agent.js --socket PATH --pseudowires FILE [--state-dir DIR] [--cni-path P]
//     [--ballast-mb N]
// --ballast-mb makes this small process hold N MB of touched memory, as the real agent does at scale:
// what a fork costs depends on it.
// Prints "ready" on stdout once listening; stops on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { createLogger } from '../../lib/log.js';
import { startCniServer } from '../../datapath/cni/server.js';
import { AttachmentStore, DEFAULT_STATE_DIR } from '../../datapath/cni/state.js';
import { FileResolver } from './static-resolver.js';

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    pseudowires: { type: 'string' },
    'state-dir': { type: 'string' },
    'cni-path': { type: 'string' },
    'ballast-mb': { type: 'string', default: '0' },
  },
});
if (!values.socket || !values.pseudowires) {
  console.error('usage: dev-agent --socket PATH --pseudowires FILE [--state-dir DIR] [--cni-path P]');
  process.exit(2);
}
const ballastMb = Number(values['ballast-mb']);
if (!Number.isInteger(ballastMb) || ballastMb < 0) {
  console.error(`dev-agent: --ballast-mb: not a whole number of MB: ${values['ballast-mb']}`);
  process.exit(2);
}
// 1 MB Buffers (outside the V8 heap, so GC does not move them), every page written
const ballast: Buffer[] = [];
for (let i = 0; i < ballastMb; i++) ballast.push(Buffer.allocUnsafeSlow(1 << 20).fill((i & 0xff) | 1));
const logger = createLogger({
  name: 'cni-agent',
  destination: 'stderr',
  level: process.env.LOG_LEVEL ?? 'warn',
});
const server = await startCniServer({
  socketPath: values.socket,
  resolver: new FileResolver(values.pseudowires),
  logger,
  store: new AttachmentStore(values['state-dir'] ?? DEFAULT_STATE_DIR),
  ...(values['cni-path'] ? { cniPath: values['cni-path'] } : {}),
});
process.stdout.write('ready\n');
process.on('exit', () => ballast.length); // keeps the ballast reachable for the process's life
const stop = (): void => {
  void server.close().then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
