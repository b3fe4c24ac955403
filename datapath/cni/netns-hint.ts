// What to tell a user when the datapath pod cannot open a pod's network namespace: the Helm value
// that mounts the runtime's directory, in the same words wherever the agent enters pods.
import { dirname } from 'node:path';

/** /var/run is /run on every distribution that has either: compare paths as one. */
const canonical = (p: string): string => p.replace(/^\/var\/run\//, '/run/');

/**
 * The hint for a namespace at `netns` that could not be opened. mounted: where the datapath pod
 * mounts the runtime's namespaces (the chart's cni.netnsDir); unknown for an agent run on a host.
 */
export function netnsHint(netns: string, mounted: string | undefined): string {
  const dir = dirname(netns);
  const under =
    mounted !== undefined &&
    (canonical(dir) === canonical(mounted) || canonical(dir).startsWith(`${canonical(mounted)}/`));
  if (under) return `the datapath pod mounts it (Helm cni.netnsDir ${mounted})`;
  return (
    `set the Helm value cni.netnsDir to ${dir}` +
    (mounted !== undefined ? ` (the datapath pod mounts ${mounted})` : '')
  );
}
