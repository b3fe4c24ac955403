// `kube-l2tp-datapath seccomp-profile --dir DIR`: the datapath pod's init container writes the agent's
// seccomp profile for this node's architecture into the kubelet's seccomp directory (mounted at DIR)
// before the agent container is created: the runtime reads a Localhost profile when it creates the
// container, so the file only has to be there by then.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from '../../lib/log.js';
import { atomicWrite } from '../agent/install-cni.js';
import { UsageError } from '../static/command.js';
import { ARCHES, datapathSeccompProfileText, isSeccompArch, SECCOMP_PROFILE_FILE } from './profile.js';

export const SECCOMP_USAGE = 'seccomp-profile --dir DIR';

/** Writes the profile into `dir` (unless it holds it already); returns the file's path. */
export async function installSeccompProfile(dir: string, arch: string, logger: Logger): Promise<string> {
  if (!isSeccompArch(arch)) {
    throw new Error(
      `no seccomp profile for the architecture ${arch} (there are: ${Object.keys(ARCHES).join(', ')}): ` +
        'install with datapath.seccompProfile=RuntimeDefault',
    );
  }
  const path = join(dir, SECCOMP_PROFILE_FILE);
  const text = datapathSeccompProfileText(arch);
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current === text) {
    logger.info({ path }, 'the seccomp profile is up to date');
    return path;
  }
  await mkdir(dir, { recursive: true });
  // renamed into place: a container created meanwhile reads the old or the new profile, never half
  await atomicWrite(path, text, 0o644);
  logger.info({ path, arch }, 'installed the seccomp profile');
  return path;
}

export async function seccompCommand(argv: string[], logger: Logger): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { dir: { type: 'string' } }, strict: true });
  if (!values.dir) throw new UsageError('--dir DIR is required');
  await installSeccompProfile(values.dir, process.arch, logger);
  return 0;
}
