// Loads the ebpf backend's programs into a fresh pin directory while its parent sends it signals: it
// handles SIGUSR2 (so a signal is pending for it, not discarded), says "loading" on stdout, loads, and
// prints one JSON line with the outcome and how many signals it handled.
import { loadEbpfNative } from '../../datapath/backend/ebpf/native.js';

const dir = process.argv[2]!;
let handled = 0;
process.on('SIGUSR2', () => handled++);
const native = loadEbpfNative();
process.stdout.write('loading\n');
let error: string | undefined;
let adopted: boolean | undefined;
try {
  const set = native.open(dir);
  adopted = set.adopted;
  for (const fd of [...Object.values(set.progs), ...Object.values(set.maps)]) native.closeFd(fd);
} catch (e) {
  error = (e as Error).message;
}
process.stdout.write('loaded\n');
// the handlers of the signals held during the load run now
setTimeout(() => {
  process.stdout.write(JSON.stringify({ error, adopted, handled }) + '\n');
  process.exit(0);
}, 100);
