#!/usr/bin/env node
// kube-l2tp-datapath: the node datapath. Subcommands:
//   static --config FILE [--backend ...]   bring up the tunnels/sessions of a file until SIGTERM
//   agent --node-name NODE ...             the node agent of a datapath pod (datapath/agent)
//   seccomp-profile --dir DIR              the datapath pod's init container: the agent's seccomp profile
import { createLogger, type Logger } from '../lib/log.js';
import { AGENT_USAGE, agentCommand } from './agent/command.js';
import { SECCOMP_USAGE, seccompCommand } from './seccomp/install.js';
import { STATIC_USAGE, UsageError, staticCommand } from './static/command.js';

export interface Subcommand {
  usage: string;
  run(argv: string[], logger: Logger): Promise<number>;
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

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const cmd = name === undefined ? undefined : SUBCOMMANDS[name];
  if (!cmd) {
    console.error(usage());
    return 2;
  }
  const logger = createLogger({ name: `datapath-${name}` });
  try {
    return await cmd.run(rest, logger);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${(err as Error).message}\n${usage()}`);
      return 2;
    }
    logger.error({ err }, 'datapath failed');
    return 1;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
// A command that failed half-way may still hold handles (a probe server, a pump thread): exit anyway,
// so a datapath pod whose start failed is restarted instead of answering /healthz with nothing behind it.
if (code !== 0) setTimeout(() => process.exit(code), 200).unref();
