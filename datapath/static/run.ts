// Static mode: bring up the tunnels and sessions of a file, keep them until asked to stop (SIGTERM,
// SIGINT) or until the datapath fails, then remove what was created. The bringing up is one pass of
// the agent's reconcile over the file's node-state spec (plan.ts); any item it cannot make Up or
// Down (an underlay outage) fails the run, as a bad file does.
import type { Logger } from '../../lib/log.js';
import { reconcile } from '../agent/reconcile.js';
import { sessionKey, type Backend, type BackendFault } from '../backend/types.js';
import type { StaticConfig } from './config.js';
import { makePlan, type Plan, type PlanEnv } from './plan.js';

export interface StaticRunDeps {
  backend: Backend;
  logger: Logger;
  env: PlanEnv;
  /** Resolves when the runner should stop; the value is the reason. */
  stop: Promise<string>;
  /** Resolves on the first fatal datapath fault. */
  fault: Promise<BackendFault>;
  /** Log every counter when this signal arrives (and once at shutdown). */
  dumpSignal?: NodeJS.Signals;
  /** Why a new session may not be made (the process's memory), as the agent asks. */
  refuseNewSession?: () => string | undefined;
}

async function logCounters(backend: Backend, plan: Plan, logger: Logger): Promise<void> {
  const all = await backend.allCounters(); // one read (the kernel backend: one dump)
  const tunnels = [];
  for (const { spec: t, sessions: ss } of plan.desired.tunnels) {
    const sessions = ss.map((s) => ({
      sessionId: s.sessionId,
      ifname: s.ifname,
      ...all.get(sessionKey(t.tunnelId, s.sessionId)),
    }));
    tunnels.push({ tunnelId: t.tunnelId, ...(await backend.tunnelCounters?.(t.tunnelId)), sessions });
  }
  logger.info({ tunnels }, 'counters');
}

/**
 * One part per distinct reason, naming the first item that failed for it and how many more did: a
 * file of thousands of sessions refused for one reason reads as one line, not thousands.
 */
export function failureSummary(failed: { tunnelId: number; sessionId?: number; error?: string }[]): string {
  const byReason = new Map<string, string[]>();
  for (const x of failed) {
    const what = x.sessionId === undefined ? `tunnel ${x.tunnelId}` : `session ${x.tunnelId}/${x.sessionId}`;
    const why = x.error ?? 'failed';
    const items = byReason.get(why);
    if (items) items.push(what);
    else byReason.set(why, [what]);
  }
  return [...byReason]
    .map(([why, items]) => `${items[0]}${items.length > 1 ? ` and ${items.length - 1} more` : ''}: ${why}`)
    .join('; ');
}

/** Returns the process exit code: 0 after a requested stop, 1 after a fault or a failed setup. */
export async function runStatic(cfg: StaticConfig, deps: StaticRunDeps): Promise<number> {
  const { backend, logger } = deps;
  let code = 0;
  let plan: Plan | undefined;
  const dump = () => void (plan && logCounters(backend, plan, logger).catch(() => undefined));
  if (deps.dumpSignal) process.on(deps.dumpSignal, dump);
  try {
    plan = await makePlan(cfg, deps.env);
    const report = await reconcile(
      backend,
      plan.desired,
      logger,
      deps.refuseNewSession ? { refuseNewSession: deps.refuseNewSession } : {},
    );
    const failed = [...report.tunnels, ...report.sessions].filter((x) => x.state === 'Error');
    if (failed.length > 0) throw new Error(failureSummary(failed));
    logger.info(
      {
        backend: backend.kind,
        sessions: report.sessions.map((s) => ({
          tunnelId: s.tunnelId,
          sessionId: s.sessionId,
          ifname: s.ifname,
          mtu: s.mtu,
        })),
      },
      'ready',
    );
    const outcome = await Promise.race([
      deps.stop.then((reason) => ({ stop: reason })),
      deps.fault.then((f) => ({ fault: f })),
    ]);
    if ('fault' in outcome) {
      logger.error({ fault: outcome.fault }, 'datapath failed; shutting down');
      code = 1;
    } else {
      logger.info({ reason: outcome.stop }, 'stopping');
    }
  } catch (err) {
    logger.error({ err }, 'static setup failed');
    code = 1;
  }
  if (deps.dumpSignal) process.off(deps.dumpSignal, dump);
  if (plan) await logCounters(backend, plan, logger).catch(() => undefined);
  await backend.close({ keepDevices: false });
  logger.info('removed everything this run created');
  return code;
}
