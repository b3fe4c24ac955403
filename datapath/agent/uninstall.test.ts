// The uninstall decision and the node cleanup: only the explicit annotation removes anything, and
// the CNI executable stays while pods are still attached (their DEL must still succeed).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../lib/log.js';
import { UNINSTALL_ANNOTATION, cleanNodeFiles, stopAction } from './uninstall.js';

describe('uninstall', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cf-uninstall-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const node = async (name: string) => {
    const d = join(dir, name);
    const files = {
      binDir: join(d, 'bin'),
      confDir: join(d, 'net.d'),
      stateDir: join(d, 'state'),
      seccompDir: join(d, 'seccomp', 'kube-l2tp'),
    };
    await mkdir(files.binDir, { recursive: true });
    await mkdir(files.seccompDir, { recursive: true });
    await writeFile(join(files.seccompDir, 'datapath.json'), '{}');
    await mkdir(join(files.confDir, 'kube-l2tp.d'), { recursive: true });
    await writeFile(join(files.binDir, 'kube-l2tp'), 'shim');
    await writeFile(join(files.binDir, 'host-local'), 'not ours');
    await writeFile(join(files.confDir, 'kube-l2tp.d', 'example.conf'), '{}');
    await writeFile(join(files.confDir, '10-primary.conflist'), '{}');
    return { ...files, logger: silentLogger() };
  };

  it('removes devices only for an uninstall mark or a node state that is gone (restarts and updates keep them)', () => {
    const marked = (v: string) => ({ metadata: { name: 'n', annotations: { [UNINSTALL_ANNOTATION]: v } } });
    assert.equal(stopAction(undefined), 'keep', 'node state unreadable: an ordinary stop');
    assert.equal(stopAction([{ metadata: { name: 'n' } }]), 'keep');
    assert.equal(stopAction([marked('no')]), 'keep');
    assert.equal(stopAction([marked('true')]), 'uninstall');
    assert.equal(stopAction([marked('true'), { metadata: { name: 'n.shard-1' } }]), 'uninstall');
    assert.equal(stopAction([]), 'release', 'no node state: the node carries nothing any more');
  });

  it('removes the shim, its config and records, the seccomp profile, and nothing else', async () => {
    const f = await node('clean');
    const r = await cleanNodeFiles(f);
    assert.deepEqual(r.attached, []);
    assert.equal(existsSync(join(f.seccompDir, 'datapath.json')), false);
    assert.equal(existsSync(f.seccompDir), true, "the directory is the pod's mount: it stays");
    assert.equal(existsSync(join(f.binDir, 'kube-l2tp')), false);
    assert.equal(existsSync(join(f.confDir, 'kube-l2tp.d')), false);
    assert.equal(existsSync(join(f.binDir, 'host-local')), true);
    assert.equal(existsSync(join(f.confDir, '10-primary.conflist')), true);
  });

  it('keeps the shim while pods are attached, so their DEL still succeeds', async () => {
    const f = await node('attached');
    await mkdir(f.stateDir);
    await writeFile(join(f.stateDir, 'cfc1_net1.json'), '{}');
    const r = await cleanNodeFiles(f);
    assert.deepEqual(r.attached, ['cfc1_net1']);
    assert.equal(existsSync(join(f.binDir, 'kube-l2tp')), true);
    assert.equal(existsSync(join(f.stateDir, 'cfc1_net1.json')), true);
    assert.equal(existsSync(join(f.confDir, 'kube-l2tp.d')), false);
    // no agent starts again: its profile goes whatever pods are left
    assert.equal(existsSync(join(f.seccompDir, 'datapath.json')), false);
  });
});
