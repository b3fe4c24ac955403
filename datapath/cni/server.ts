// The agent side of the CNI socket: the node agent calls startCniServer once; each connection is
// one plugin invocation forwarded by the shim (protocol in lib/agent-protocol.ts).
//
// The pod's network namespace travels as a descriptor: the shim runs in the runtime's mount
// namespace and opens CNI_NETNS there, which the agent's container may not see (containerd keeps
// them under its state dir with netns_mounts_under_state_dir). The request line then carries
// `"netnsFd":1` and the descriptor rides with it (SCM_RIGHTS), or `"netnsErrno"`/`"netnsError"`
// when the shim could not open it. Both keys are optional: a request without them (an older shim)
// is served from the path. Node's sockets drop descriptors, so the request is read by the netlink
// addon's recvRequest (recvmsg) instead.
//
// Only root may call: the socket is 0600, and the caller's credentials (SO_PEERCRED, which the
// kernel takes at connect and nobody can forge) must say uid 0, as the container runtime does; a
// request whose caller cannot be checked (no addon) is refused.
//
// DELs that found no agent (the shim answered them with success and left them in DEFERRED_DEL_DIR
// beside the socket) are served before the socket listens, so nothing they remove can be an
// attachment made after them, and once more right after, for those left while the first pass ran.
import { closeSync } from 'node:fs';
import { chmod, lstat, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { createServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import {
  DEFERRED_DEL_DIR,
  FORWARDED_ENV,
  PROTOCOL_VERSION,
  cniRequestSchema,
  type CniRequest,
  encodeResponse,
  type PseudowireResolver,
} from '../../lib/agent-protocol.js';
import { CniCode, CniError } from '../../lib/cni/errors.js';
import { CURRENT_VERSION } from '../../lib/cni/versions.js';
import type { Logger } from '../../lib/log.js';
import { loadNative, type NativeNetlink } from '../../lib/netlink/native.js';
import { dispatch, type Invocation } from './dispatch.js';
import { ProcessLocker, type AttachmentStore, type Locker } from './state.js';

export interface CniServerOptions {
  socketPath: string;
  resolver: PseudowireResolver;
  logger: Logger;
  /** Default CNI_PATH for delegates when the runtime passes none. */
  cniPath?: string;
  /**
   * Where this process finds the node's CNI plugins (IPAM delegates), searched before the runtime's
   * CNI_PATH: the runtime's CNI_PATH names host directories, which a container sees elsewhere.
   */
  delegateDirs?: readonly string[];
  /**
   * The attachment records. The caller owns it: the agent's backend reads the same store (where its
   * exclusive attachments moved session devices), so there is one per state directory.
   */
  store: AttachmentStore;
  /**
   * The per-attachment locks of its commands; the agent passes its own, which it takes too when it
   * changes an attached pod (a new one when absent).
   */
  locker?: Locker;
  /** How long a connection may take to send its request (default 10 s); the shim sends it at once. */
  requestTimeoutMs?: number;
  /**
   * Called after every successful ADD or DEL. An exclusive attachment moves the session device
   * between namespaces, which the datapath must follow at once (not at its next resync), so the
   * agent reconciles; its passes are level-triggered and coalesce, so a call on every change is safe.
   */
  onAttachmentChange?: () => void;
}

export interface CniServer {
  close(): Promise<void>;
}

const { ETIMEDOUT, EMSGSIZE } = osConstants.errno;
/** The one caller: container runtimes run CNI plugins as root. */
const CALLER_UID = 0;
const MAX_REQUEST = 4 << 20;
const REQUEST_TIMEOUT_MS = 10_000;

/** The request keys beside the protocol's own that say what happened to CNI_NETNS in the shim. */
const netnsKeysSchema = z.object({
  netnsFd: z.literal(1).optional(),
  netnsErrno: z.number().int().min(0).optional(),
  netnsError: z.string().max(200).optional(),
});

function nativeReceiver(log: Logger): NativeNetlink | undefined {
  try {
    return loadNative();
  } catch (e) {
    log.warn(
      { err: (e as Error).message },
      'netlink addon missing: every CNI request is refused (its caller cannot be checked)',
    );
    return undefined;
  }
}

const closeAll = (fds: readonly number[]): void => {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // already gone
    }
  }
};

/** A stream socket's descriptor (net.Socket keeps it on its libuv handle). */
const socketFd = (sock: Socket): number | undefined => {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
};

export async function startCniServer(opts: CniServerOptions): Promise<CniServer> {
  const log = opts.logger.child({ component: 'cni' });
  const deps = {
    resolver: opts.resolver,
    logger: log,
    store: opts.store,
    locker: opts.locker ?? new ProcessLocker(),
    nodePid: process.pid,
    ...(opts.delegateDirs ? { delegateDirs: opts.delegateDirs } : {}),
  };
  const sockets = new Set<Socket>();
  const native = nativeReceiver(log);
  const timeoutMs = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;

  const refuse = (who: string): CniError =>
    new CniError(
      CniCode.InvalidEnvironment,
      `agent: refused a request from ${who}: only root (the container runtime) may call the kube-l2tp agent`,
    );

  /** The invocation's environment: the forwarded CNI_* variables, CNI_PATH defaulted. */
  const requestEnv = (req: CniRequest): Record<string, string> => {
    const env: Record<string, string> = {};
    for (const k of FORWARDED_ENV) if (req.env[k] !== undefined) env[k] = req.env[k];
    if (env.CNI_PATH === undefined && opts.cniPath !== undefined) env.CNI_PATH = opts.cniPath;
    return env;
  };

  /** Serve the DELs the shim left while no agent listened; each file once, then it goes. */
  const serveDeferredDels = async (): Promise<void> => {
    const dir = join(dirname(opts.socketPath), DEFERRED_DEL_DIR);
    const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => /^del-\w+\.req$/.test(f));
    for (const f of files) {
      const path = join(dir, f);
      try {
        // the root shim writes them (0600 in a 0700 directory): anything else is nobody's request
        const st = await lstat(path);
        if (!st.isFile() || st.uid !== CALLER_UID) {
          log.warn({ file: path, uid: st.uid }, 'ignored a deferred DEL file not written by root');
          continue;
        }
        const raw: unknown = JSON.parse((await readFile(path, 'utf8')).split('\n')[0]!);
        const req = cniRequestSchema.parse(raw);
        if (req.v !== PROTOCOL_VERSION || req.env.CNI_COMMAND !== 'DEL') {
          throw new Error(`not a DEL of shim protocol ${PROTOCOL_VERSION}`);
        }
        const o = await dispatch({ env: requestEnv(req), stdin: req.stdin }, deps);
        const who = { containerID: req.env.CNI_CONTAINERID, ifname: req.env.CNI_IFNAME };
        if (o.exitCode === 0) log.info(who, 'served a DEL the runtime made while no agent ran');
        else log.warn({ ...who, answer: o.stdout.trim() }, 'a DEL made while no agent ran failed');
      } catch (e) {
        log.warn({ file: path, err: (e as Error).message }, 'unreadable deferred DEL');
      }
      await rm(path, { force: true });
    }
  };

  const handle = (sock: Socket): void => {
    sockets.add(sock);
    let done = false;
    const reply = (exitCode: number, stdout: string): void => {
      if (done) return;
      done = true;
      // the read side may never have been read (recvmsg path): nothing but this answer is left to do
      sock.end(encodeResponse(exitCode, stdout), () => sock.destroy());
    };
    const fail = (e: CniError): void => reply(1, JSON.stringify(e.toJSON(CURRENT_VERSION)) + '\n');
    const onLine = (line: Buffer, fds: readonly number[] = []): void => {
      let req;
      let keys;
      try {
        const raw: unknown = JSON.parse(line.toString('utf8'));
        const parsed = cniRequestSchema.safeParse(raw);
        if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? 'bad request');
        req = parsed.data;
        const k = netnsKeysSchema.safeParse(raw);
        if (!k.success) throw new Error(`netns keys: ${k.error.issues[0]?.message ?? 'bad'}`);
        keys = k.data;
      } catch (e) {
        closeAll(fds);
        fail(
          new CniError(
            CniCode.IoFailure,
            `agent: malformed request from the CNI shim: ${(e as Error).message}`,
          ),
        );
        return;
      }
      if (req.v !== PROTOCOL_VERSION) {
        closeAll(fds);
        fail(
          new CniError(
            CniCode.ProtocolMismatch,
            `agent speaks shim protocol ${PROTOCOL_VERSION}, the shim sent ${req.v}`,
          ),
        );
        return;
      }
      const [netnsFd, ...extra] = keys.netnsFd === 1 ? fds : [];
      closeAll(keys.netnsFd === 1 ? extra : fds);
      if (keys.netnsFd === 1 && netnsFd === undefined) {
        fail(
          new CniError(
            CniCode.IoFailure,
            'agent: the shim sent the pod network namespace, but no descriptor arrived (agent without the netlink addon?)',
          ),
        );
        return;
      }
      const env = requestEnv(req);
      const inv: Invocation = { env, stdin: req.stdin };
      if (netnsFd !== undefined) inv.netnsFd = netnsFd;
      else if (keys.netnsErrno !== undefined) {
        inv.netnsOpenError = {
          errno: keys.netnsErrno,
          message: keys.netnsError ?? `errno ${keys.netnsErrno}`,
        };
      }
      const changes = env.CNI_COMMAND === 'ADD' || env.CNI_COMMAND === 'DEL';
      dispatch(inv, deps)
        .then(
          (o) => {
            reply(o.exitCode, o.stdout);
            if (o.exitCode === 0 && changes) opts.onAttachmentChange?.();
          },
          (e: unknown) => fail(CniError.from(e)),
        )
        .finally(() => {
          if (netnsFd !== undefined) closeAll([netnsFd]);
        });
    };
    const fd = native ? socketFd(sock) : undefined;
    sock.on('error', (e) => log.warn({ err: e.message }, 'cni socket connection error'));
    sock.on('close', () => sockets.delete(sock));
    if (!native || fd === undefined) {
      fail(refuse('a caller whose credentials cannot be checked (no netlink addon)'));
      return;
    }
    // The connection was accepted paused: libuv never reads it, recvmsg does (with descriptors).
    native.recvRequest(fd, MAX_REQUEST, timeoutMs).then(
      (r) => {
        if (sock.destroyed) {
          closeAll(r.fds); // the agent is closing, or the client went away: serve nothing
          return;
        }
        if (r.peerUid !== CALLER_UID) {
          closeAll(r.fds);
          log.warn(
            { peerUid: r.peerUid, peerPid: r.peerPid },
            'refused a CNI request from a non-root caller',
          );
          fail(refuse(r.peerUid === undefined ? 'a caller of unknown identity' : `uid ${r.peerUid}`));
          return;
        }
        const nl = r.data.indexOf(0x0a);
        if (nl >= 0) onLine(r.data.subarray(0, nl), r.fds);
        else {
          closeAll(r.fds);
          fail(new CniError(CniCode.IoFailure, 'agent: request ended without a newline'));
        }
      },
      (e: Error & { errno?: number }) => {
        if (e.errno === ETIMEDOUT) log.warn('cni connection sent no complete request in time; closing it');
        fail(
          new CniError(
            CniCode.IoFailure,
            e.errno === ETIMEDOUT
              ? 'agent: no complete request in time (the shim sends it at once)'
              : e.errno === EMSGSIZE
                ? 'agent: request larger than 4 MiB'
                : `agent: reading the request: ${e.message}`,
          ),
        );
      },
    );
  };

  await mkdir(dirname(opts.socketPath), { recursive: true, mode: 0o755 });
  await rm(opts.socketPath, { force: true }); // a previous agent's socket
  await serveDeferredDels();
  // allowHalfOpen: the shim half-closes after its request and then waits for the answer
  // pauseOnConnect: with the addon the request is read by recvmsg, never by libuv
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(opts.socketPath, 0o600);
  log.info({ socket: opts.socketPath }, 'cni server listening');
  await serveDeferredDels(); // any a shim left while the first pass ran, before the socket was there

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
