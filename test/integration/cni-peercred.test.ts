// The agent's CNI socket serves root only, by the caller's kernel credentials (SO_PEERCRED): even with
// the socket's mode opened up, a process of another uid running the real shim is refused with a
// clear error, and the same request from root is served.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_SOCKET_DIR } from '../../lib/agent-protocol.js';
import { silentLogger } from '../../lib/log.js';
import { startCniServer, type CniServer } from '../../datapath/cni/server.js';
import { AttachmentStore } from '../../datapath/cni/state.js';

const SHIM = join(import.meta.dirname, '../../../cmd/cni/shim/build/kube-l2tp');
const NOBODY = 65534;

function runShim(uid: number, socket: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(shimCopy, [], {
      uid,
      gid: uid,
      env: { CNI_COMMAND: 'STATUS' },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    let stdout = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout }));
    p.stdin.end(
      JSON.stringify({
        cniVersion: '1.1.0',
        name: 'n',
        type: 'kube-l2tp',
        pseudowire: 'ns/w',
        agentSocket: socket,
      }),
    );
  });
}

let dir = '';
let shimCopy = '';
let server: CniServer | undefined;
const sockDir = join(AGENT_SOCKET_DIR, `tn-peercred-${process.pid}`);
const socket = join(sockDir, 'cni.sock');

describe('CNI socket: only root may call the agent (SO_PEERCRED)', () => {
  before(async () => {
    assert.equal(process.getuid?.(), 0, 'needs root (it runs the shim as another uid)');
    dir = await mkdtemp(join(tmpdir(), 'tn-peercred-'));
    await chmod(dir, 0o755);
    shimCopy = join(dir, 'kube-l2tp');
    await copyFile(SHIM, shimCopy);
    await chmod(shimCopy, 0o755);
    server = await startCniServer({
      socketPath: socket,
      resolver: { ready: () => true, lookup: () => Promise.resolve(undefined) },
      logger: silentLogger(),
      store: new AttachmentStore(join(dir, 'state')),
    });
    // what a careless mount or umask could do: the file mode no longer keeps other users out
    await chmod(sockDir, 0o755);
    await chmod(socket, 0o666);
  });
  after(async () => {
    await server?.close();
    await rm(sockDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a non-root caller with a clear error', async () => {
    const r = await runShim(NOBODY, socket);
    console.log(`uid ${NOBODY} STATUS -> exit ${r.code}: ${r.stdout.trim()}`);
    assert.equal(r.code, 1);
    const e = JSON.parse(r.stdout) as { code: number; msg: string };
    assert.equal(e.code, 4);
    assert.equal(
      e.msg,
      `agent: refused a request from uid ${NOBODY}: only root (the container runtime) may call the kube-l2tp agent`,
    );
  });

  it('serves root', async () => {
    const r = await runShim(0, socket);
    console.log(`uid 0 STATUS -> exit ${r.code}: ${r.stdout.trim() || '(no output: ready)'}`);
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, '');
  });
});
