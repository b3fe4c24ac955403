// The agent side of the CNI socket: the node agent calls startCniServer once; each connection is
// one plugin invocation forwarded by the shim (protocol in lib/agent-protocol.ts).
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import {
  FORWARDED_ENV,
  PROTOCOL_VERSION,
  cniRequestSchema,
  encodeResponse,
  type PseudowireResolver,
} from '../../lib/agent-protocol.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { CURRENT_VERSION } from '../../lib/cni/versions.js';
import type { Logger } from '../../lib/log.js';
import { dispatch } from './plugin.js';
import { AttachmentStore, DEFAULT_STATE_DIR, ProcessLocker } from './state.js';

export interface CniServerOptions {
  socketPath: string;
  resolver: PseudowireResolver;
  logger: Logger;
  /** Default CNI_PATH for delegates when the runtime passes none. */
  cniPath?: string;
  /** Attachment records; default /var/lib/cni/kube-l2tp. */
  stateDir?: string;
  /** How long a connection may take to send its request (default 10 s); the shim sends it at once. */
  requestTimeoutMs?: number;
}

export interface CniServer {
  close(): Promise<void>;
}

const MAX_REQUEST = 4 << 20;
const REQUEST_TIMEOUT_MS = 10_000;

export async function startCniServer(opts: CniServerOptions): Promise<CniServer> {
  const log = opts.logger.child({ component: 'cni' });
  const deps = {
    resolver: opts.resolver,
    logger: log,
    store: new AttachmentStore(opts.stateDir ?? DEFAULT_STATE_DIR),
    locker: new ProcessLocker(),
    nodePid: process.pid,
  };
  const sockets = new Set<Socket>();

  const handle = (sock: Socket): void => {
    sockets.add(sock);
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let gotLine = false;
    const reply = (exitCode: number, stdout: string): void => {
      if (done) return;
      done = true;
      sock.end(encodeResponse(exitCode, stdout));
    };
    const fail = (e: CniError): void => reply(1, JSON.stringify(e.toJSON(CURRENT_VERSION)) + '\n');
    const onLine = (line: Buffer): void => {
      let req;
      try {
        const parsed = cniRequestSchema.safeParse(JSON.parse(line.toString('utf8')));
        if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'bad request');
        req = parsed.data;
      } catch (e) {
        fail(
          new CniError(
            CniCode.IoFailure,
            `agent: malformed request from the CNI shim: ${(e as Error).message}`,
          ),
        );
        return;
      }
      if (req.v !== PROTOCOL_VERSION) {
        fail(
          new CniError(
            CniCode.ProtocolMismatch,
            `agent speaks shim protocol ${PROTOCOL_VERSION}, the shim sent ${req.v}`,
          ),
        );
        return;
      }
      const env: Record<string, string> = {};
      for (const k of FORWARDED_ENV) if (req.env[k] !== undefined) env[k] = req.env[k];
      if (env.CNI_PATH === undefined && opts.cniPath !== undefined) env.CNI_PATH = opts.cniPath;
      dispatch({ env, stdin: req.stdin }, deps).then(
        (o) => reply(o.exitCode, o.stdout),
        (e: unknown) => fail(CniError.from(e)),
      );
    };
    // A client that connects and never finishes its request must not hold a socket for ever; once the
    // request is in, the plugin's own timeouts bound the answer.
    sock.setTimeout(opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS, () => {
      if (gotLine) return;
      log.warn('cni connection sent no complete request in time; closing it');
      fail(new CniError(CniCode.IoFailure, 'agent: no complete request in time (the shim sends it at once)'));
      sock.destroySoon();
    });
    sock.on('data', (d: Buffer) => {
      if (done) return;
      const nl = d.indexOf(0x0a);
      if (nl >= 0) {
        gotLine = true;
        sock.setTimeout(0);
        chunks.push(d.subarray(0, nl));
        const line = Buffer.concat(chunks);
        chunks.length = 0;
        sock.removeAllListeners('data');
        onLine(line);
        return;
      }
      chunks.push(d);
      size += d.length;
      if (size > MAX_REQUEST) fail(new CniError(CniCode.IoFailure, 'agent: request larger than 4 MiB'));
    });
    sock.on('end', () => {
      if (!gotLine) fail(new CniError(CniCode.IoFailure, 'agent: request ended without a newline'));
    });
    sock.on('error', (e) => log.warn({ err: e.message }, 'cni socket connection error'));
    sock.on('close', () => sockets.delete(sock));
  };

  await mkdir(dirname(opts.socketPath), { recursive: true, mode: 0o755 });
  await rm(opts.socketPath, { force: true }); // a previous agent's socket
  // allowHalfOpen: the shim half-closes after its request and then waits for the answer
  const server = createServer({ allowHalfOpen: true }, handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(opts.socketPath, 0o600);
  log.info({ socket: opts.socketPath }, 'cni server listening');

  return {
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      await rm(opts.socketPath, { force: true });
    },
  };
}
