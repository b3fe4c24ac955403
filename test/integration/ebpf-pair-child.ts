// Runs inside a test's network namespace: makes a session pair with createPair twice, recording what
// each end looked like when prepare ran (the moment the backend binds the shared tc blocks). The
// second prepare fails. Prints both ends as prepare saw them, as they are after, and the veths left
// after the failed one, as one JSON line.
import { createPair, listVeths, peerName } from '../../datapath/backend/ebpf/devices.js';
import { getLink } from '../../datapath/backend/userspace/tap.js';

const seen = async (ifname: string) => {
  const l = await getLink(ifname);
  return l && { owner: l.owner, up: l.up, mtu: l.mtu };
};
const ends = async (sessionId: number, ifname: string) => ({
  peer: await seen(peerName(sessionId)),
  dev: await seen(ifname),
});

let during: Awaited<ReturnType<typeof ends>> | undefined;
await createPair(
  'l2tpeth7',
  peerName(7),
  { tunnelId: 3, sessionId: 7 },
  { mtu: 1400, queues: 1 },
  async () => {
    during = await ends(7, 'l2tpeth7');
    return { peer: 0 };
  },
);
const after = await ends(7, 'l2tpeth7');
const failed = await createPair(
  'l2tpeth8',
  peerName(8),
  { tunnelId: 3, sessionId: 8 },
  { mtu: 1400, queues: 1 },
  async () => {
    throw new Error('prepare failed');
  },
).then(
  () => 'no error',
  (e: Error) => e.message,
);
const left = (await listVeths()).map((v) => v.ifname).sort();
process.stdout.write(JSON.stringify({ during, after, failed, left }) + '\n');
