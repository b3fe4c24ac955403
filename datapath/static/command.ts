// `kube-l2tp-datapath static --config FILE [--backend userspace|kernel|auto]`
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Logger } from '../../lib/log.js';
import type { StopSignal } from '../../lib/stop-signals.js';
import { BACKEND_CHOICES, selectBackend, type BackendChoice } from '../backend/select.js';
import type { BackendFault } from '../backend/types.js';
import { ConfigError, parseStaticConfig } from './config.js';
import { hostPlanEnv } from './plan.js';
import { runStatic } from './run.js';
import { memoryGate } from '../agent/memory-gate.js';

export const STATIC_USAGE =
  'static --config FILE [--backend userspace|kernel|ebpf|auto] [--offload on|off] [--bpffs DIR]';

export async function staticCommand(
  argv: string[],
  logger: Logger,
  stop: Promise<StopSignal>,
): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      backend: { type: 'string', default: 'auto' },
      offload: { type: 'string', default: 'on' },
      bpffs: { type: 'string' },
    },
    strict: true,
  });
  if (!values.config) throw new UsageError('--config FILE is required');
  const choice = values.backend as BackendChoice;
  if (!BACKEND_CHOICES.includes(choice))
    throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}`);

  if (values.offload !== 'on' && values.offload !== 'off')
    throw new UsageError('--offload must be on or off');

  let cfg;
  try {
    cfg = parseStaticConfig(await readFile(values.config, 'utf8'));
  } catch (err) {
    if (err instanceof ConfigError) {
      logger.error(
        { file: values.config, problems: err.problems },
        'configuration rejected; nothing was created',
      );
      console.error(`${values.config}: ${err.message}`);
      return 2;
    }
    throw err;
  }

  let onFault: (f: BackendFault) => void = () => undefined;
  const fault = new Promise<BackendFault>((resolve) => {
    onFault = (f) => {
      if (f.fatal) resolve(f);
    };
  });
  const { backend, reason } = await selectBackend(choice, {
    logger,
    onFault: (f) => onFault(f),
    offload: values.offload === 'on',
    ...(values.bpffs ? { bpffs: values.bpffs } : {}),
  });
  logger.info({ backend: backend.kind, reason }, 'backend selected');

  // Signal handlers alone do not keep Node running; the pump holds a reference while tunnels exist,
  // and this timer covers the moments when none do.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    return await runStatic(cfg, {
      backend,
      logger,
      env: hostPlanEnv(() => backend.listSessions()),
      stop,
      fault,
      dumpSignal: 'SIGUSR2',
      refuseNewSession: memoryGate().refuseNewSession,
    });
  } finally {
    clearInterval(keepAlive);
  }
}

export class UsageError extends Error {
  override name = 'UsageError';
}
