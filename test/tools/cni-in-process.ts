#!/usr/bin/env node
// The plugin in-process, from this process's env and stdin (no agent): for tests, for measuring,
// and as a fallback. Pseudowires come from the file named by KUBE_L2TP_PSEUDOWIRES (see
// static-resolver.ts); records go to KUBE_L2TP_STATE_DIR (default /var/lib/cni/kube-l2tp).
import { readFileSync } from 'node:fs';
import { createLogger } from '../../lib/log.js';
import { dispatch } from '../../datapath/cni/dispatch.js';
import { FileResolver } from './static-resolver.js';
import { AttachmentStore, DEFAULT_STATE_DIR, FileLocker } from '../../datapath/cni/state.js';
import { join } from 'node:path';

let stdin = '';
try {
  stdin = process.env.CNI_COMMAND === 'VERSION' && process.stdin.isTTY ? '' : readFileSync(0, 'utf8');
} catch {
  stdin = '';
}
const stateDir = process.env.KUBE_L2TP_STATE_DIR ?? DEFAULT_STATE_DIR;
const logger = createLogger({ name: 'cni', destination: 'stderr', level: process.env.LOG_LEVEL ?? 'warn' });
const out = await dispatch(
  { env: process.env, stdin },
  {
    resolver: new FileResolver(process.env.KUBE_L2TP_PSEUDOWIRES ?? '/run/kube-l2tp/pseudowires.json'),
    logger,
    store: new AttachmentStore(stateDir),
    locker: new FileLocker(join(stateDir, 'locks')),
    nodePid: process.pid,
  },
);
process.stdout.write(out.stdout, () => process.exit(out.exitCode));
