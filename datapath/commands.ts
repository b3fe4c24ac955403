// kube-l2tp-datapath's subcommands (main.ts is the executable):
//   static --config FILE [--backend ...]   bring up the tunnels/sessions of a file until SIGTERM
//   agent --node-name NODE ...             the node agent of a datapath pod (datapath/agent)
//   seccomp-profile --dir DIR              the datapath pod's init container: the agent's seccomp profile
import { createLogger, type Logger } from '../lib/log.js';
import type { StopSignal } from '../lib/stop-signals.js';
import { AGENT_USAGE, agentCommand } from './agent/command.js';
import { SECCOMP_USAGE, seccompCommand } from './seccomp/install.js';
import { STATIC_USAGE, UsageError, staticCommand } from './static/command.js';

export interface Subcommand {
  usage: string;
  /** `stop`: the first SIGTERM or SIGINT, caught since the process started. */
  run(argv: string[], logger: Logger, stop: Promise<StopSignal>): Promise<number>;
}

export const SUBCOMMANDS: Record<string, Subcommand> = {
  static: { usage: STATIC_USAGE, run: staticCommand },
  agent: { usage: AGENT_USAGE, run: agentCommand },
  'seccomp-profile': { usage: SECCOMP_USAGE, run: seccompCommand },
};

function usage(): string {
  return `usage: kube-l2tp-datapath <command> ...\n${Object.values(SUBCOMMANDS)
    .map((c) => `  kube-l2tp-datapath ${c.usage}`)
    .join('\n')}`;
}

export async function main(argv: string[], stop: Promise<StopSignal>): Promise<number> {
  const [name, ...rest] = argv;
  const cmd = name === undefined ? undefined : SUBCOMMANDS[name];
  if (!cmd) {
    console.error(usage());
    return 2;
  }
  const logger = createLogger({ name: `datapath-${name}` });
  try {
    return await cmd.run(rest, logger, stop);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}\n${usage()}`);
      return 2;
    }
    logger.error({ err }, 'datapath failed');
    return 1;
  }
}
