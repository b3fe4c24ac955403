// Installs the CNI executable (and a reference config) into the host's CNI directories. Writes go
// to a temporary file in the same directory and are renamed into place, so a runtime calling the
// plugin mid-update sees either the old or the new file, never half of one.
import { chmod, copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../lib/log.js';

export interface CniInstallOptions {
  /** The CNI executable shipped in the image (the native shim). */
  source: string;
  binDir: string;
  confDir: string;
  socketPath: string;
  logger: Logger;
}

export const CNI_BINARY = 'kube-l2tp';

async function sameContent(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([readFile(a), readFile(b)]);
    return x.equals(y);
  } catch {
    return false;
  }
}

export async function atomicWrite(path: string, data: string | Buffer, mode = 0o644): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data, { mode });
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export async function installCni(o: CniInstallOptions): Promise<void> {
  await mkdir(o.binDir, { recursive: true });
  const target = join(o.binDir, CNI_BINARY);
  if (!(await sameContent(o.source, target))) {
    const tmp = `${target}.tmp-${process.pid}`;
    try {
      await copyFile(o.source, tmp);
      await chmod(tmp, 0o755);
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    o.logger.info({ target }, 'installed the CNI executable');
  }
  // A reference network config in a subdirectory: runtimes only read *.conf/*.conflist directly in
  // confDir, so this never becomes anybody's default network. Multus users get configs from the
  // NetworkAttachmentDefinitions the operator generates instead.
  const dir = join(o.confDir, 'kube-l2tp.d');
  await mkdir(dir, { recursive: true });
  const example = {
    cniVersion: '1.1.0',
    name: 'example-wire',
    type: CNI_BINARY,
    agentSocket: o.socketPath,
    pseudowire: { namespace: 'default', name: 'example-wire' },
  };
  await atomicWrite(join(dir, 'example.conf'), JSON.stringify(example, null, 2) + '\n');
}
