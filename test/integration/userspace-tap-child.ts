// Runs inside a test's network namespace, as root:
//   mark: the userspace backend brings up one session; records the TAP as it was at the moment it
//     became persistent, then closes keeping devices. Prints that, and the TAP after close.
//   killed: opens a new TAP through the pump, prints that it exists, and is SIGKILLed before
//     anything else: what an agent killed between making a session's TAP and marking it leaves.
// Both print one JSON line.
import { reconcile } from '../../datapath/agent/reconcile.js';
import { createUserspaceBackend } from '../../datapath/backend/userspace/backend.js';
import { loadPump } from '../../datapath/backend/userspace/native.js';
import { getLink } from '../../datapath/backend/userspace/tap.js';
import { capturingLogger, manySessions } from '../harness/nodestate.js';

const seen = async (ifname: string) => {
  const l = await getLink(ifname);
  return l && { owner: l.owner, mtu: l.mtu };
};

const pump = loadPump();
if (process.argv[2] === 'killed') {
  pump.openTap('l2tpeth5', false);
  process.stdout.write(JSON.stringify({ opened: await seen('l2tpeth5') }) + '\n');
  process.kill(process.pid, 'SIGKILL');
} else {
  // the backend loads the same pump object: record what each TAP looks like when made persistent
  const opened = new Map<number, string>();
  const atPersist: unknown[] = [];
  const { openTap, setTapPersist } = pump;
  pump.openTap = (name, vnet) => {
    const t = openTap.call(pump, name, vnet);
    opened.set(t.fd, t.name);
    return t;
  };
  const names: Promise<unknown>[] = [];
  pump.setTapPersist = (fd, persist) => {
    if (persist) names.push(seen(opened.get(fd)!).then((l) => atPersist.push(l)));
    setTapPersist.call(pump, fd, persist);
  };
  const { log } = capturingLogger();
  const backend = createUserspaceBackend({ logger: log, offload: false });
  const report = await reconcile(backend, manySessions(1, '127.0.0.1', '127.0.0.1'), log);
  await Promise.all(names);
  await backend.close({ keepDevices: true });
  process.stdout.write(
    JSON.stringify({ state: report.sessions[0]?.state, atPersist, afterClose: await seen('l2tpeth1') }) +
      '\n',
  );
}
