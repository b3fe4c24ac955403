// Is the underlay between a tunnel's endpoints usable from this node? An outage (link down, route
// gone, address removed) does not remove anything: it is reported, and traffic resumes by itself.
import { readFile } from 'node:fs/promises';
import { runCapture } from '../../lib/exec.js';

export type UnderlayProbe = (local: string, remote: string) => Promise<string | undefined>;

interface RouteGet {
  dev?: string;
  prefsrc?: string;
  type?: string;
}

/** undefined when fine, else what is wrong, in words for the status. */
export const probeUnderlay: UnderlayProbe = async (local, remote) => {
  const r = await runCapture('ip', ['-j', 'route', 'get', remote, 'from', local]);
  if (r.code !== 0) {
    const why = r.stderr.trim().replace(/^RTNETLINK answers: /, '') || `exit ${r.code}`;
    return `no underlay route from ${local} to ${remote} (${why})`;
  }
  let route: RouteGet | undefined;
  try {
    route = (JSON.parse(r.stdout) as RouteGet[])[0];
  } catch {
    return undefined; // an ip that prints no JSON: nothing to judge by
  }
  if (!route?.dev) return undefined;
  if (route.type === 'local') return undefined; // both ends on this host (tests)
  const state = await readFile(`/sys/class/net/${route.dev}/operstate`, 'utf8').catch(() => 'unknown');
  if (state.trim() === 'down') return `underlay interface ${route.dev} is down`;
  const carrier = await readFile(`/sys/class/net/${route.dev}/carrier`, 'utf8').catch(() => '1');
  if (carrier.trim() === '0') return `underlay interface ${route.dev} has no carrier`;
  return undefined;
};
