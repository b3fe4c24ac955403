// Why the datapath pod keeps SYS_ADMIN: attaching a pod means working inside the pod's network
// namespace (a netlink socket opened there, IPAM delegates run there), and entering a network
// namespace (setns) takes CAP_SYS_ADMIN. The agent's own code path, run with every capability but
// SYS_ADMIN, fails with EPERM; with it, it works. If a kernel ever allows this with less, this fails.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { before, it } from 'node:test';
import { runCapture } from '../../lib/exec.js';
import { Lab, requireRoot } from '../harness/netns.js';

before(() => requireRoot());

const socketModule = fileURLToPath(new URL('../../lib/netlink/socket.js', import.meta.url));
// opens a route netlink socket inside the namespace given as argv[1], as the CNI attach does
const CHILD = `
const { NetlinkSocket, NETLINK_ROUTE } = await import(process.argv[1]);
try { NetlinkSocket.openIn(NETLINK_ROUTE, process.argv[2]).close(); console.log('opened'); }
catch (e) { console.log(String(e.message)); process.exitCode = 1; }
`;

it('opening a netlink socket in a pod namespace needs SYS_ADMIN (and works with it)', async () => {
  const lab = new Lab();
  try {
    const ns = await lab.netns('hd-sysadmin');
    const args = ['--input-type=module', '-e', CHILD, socketModule, `/run/netns/${ns}`];
    const without = await runCapture('setpriv', [
      '--inh-caps=-sys_admin',
      '--bounding-set=-sys_admin',
      process.execPath,
      ...args,
    ]);
    const withIt = await runCapture(process.execPath, args);
    console.log(`without SYS_ADMIN: ${without.stdout.trim()}; with: ${withIt.stdout.trim()}`);
    assert.notEqual(without.code, 0);
    assert.match(without.stdout, /EPERM|not permitted/i);
    assert.equal(withIt.code, 0, withIt.stdout + withIt.stderr);
    assert.equal(withIt.stdout.trim(), 'opened');
  } finally {
    await lab.cleanup();
  }
});
