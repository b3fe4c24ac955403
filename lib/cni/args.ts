// CNI_ARGS ("FOO=BAR;ABC=123") as Kubernetes runtimes send it, with IgnoreUnknown (libcni pkg/types/args.go).
import { CniCode, CniError } from './errors.js';

export interface K8sArgs {
  K8S_POD_NAMESPACE?: string;
  K8S_POD_NAME?: string;
  K8S_POD_INFRA_CONTAINER_ID?: string;
  K8S_POD_UID?: string;
  /** Conventional per-attachment MAC (CNI_ARGS MAC=..). */
  MAC?: string;
}
/** The CNI_ARGS keys this plugin understands; others need IgnoreUnknown. */
export const KNOWN_CNI_ARGS: ReadonlySet<string> = new Set([
  'IgnoreUnknown',
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
  'MAC',
]);

const truthy = (v: string): boolean => ['1', 'true', 't'].includes(v.toLowerCase());

export function parseCniArgs(raw: string | undefined): K8sArgs {
  const out: K8sArgs = {};
  if (raw === undefined || raw === '') return out;
  const pairs: [string, string][] = [];
  for (const part of raw.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new CniError(CniCode.InvalidEnvironment, `CNI_ARGS: invalid pair "${part}" (want KEY=VALUE)`);
    pairs.push([part.slice(0, eq), part.slice(eq + 1)]);
  }
  const ignoreUnknown = pairs.some(([k, v]) => k === 'IgnoreUnknown' && truthy(v));
  for (const [k, v] of pairs) {
    if (!KNOWN_CNI_ARGS.has(k)) {
      if (ignoreUnknown) continue;
      throw new CniError(
        CniCode.InvalidEnvironment,
        `CNI_ARGS: unknown key "${k}" (set IgnoreUnknown=1 to ignore)`,
      );
    }
    if (k !== 'IgnoreUnknown') out[k as keyof K8sArgs] = v;
  }
  return out;
}
