// The operator Deployment's environment (set by the Helm chart from its values) -> the settings of
// the datapath pods and the controller. Pure, so the chart's contract is unit-tested.
import { isIP } from 'node:net';
import type { ControllerConfig } from './controller.js';
import type { PodConfig } from './render.js';

export type Env = Readonly<Record<string, string | undefined>>;

export class EnvConfigError extends Error {
  override name = 'EnvConfigError';
}

function json<T>(env: Env, key: string, check: (v: unknown) => v is T): T | undefined {
  const raw = env[key];
  if (raw === undefined || raw === '' || raw === 'null') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new EnvConfigError(`${key}: not JSON: ${raw}`);
  }
  if (!check(v)) throw new EnvConfigError(`${key}: unexpected shape: ${raw}`);
  return v;
}

function int(env: Env, key: string, min: number, max: number): number | undefined {
  const raw = env[key];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new EnvConfigError(`${key}: must be an integer ${min}-${max}, got ${raw}`);
  return n;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringMap = (v: unknown): v is Record<string, string> =>
  isObject(v) && Object.values(v).every((x) => typeof x === 'string');
const isObjectList = (v: unknown): v is Record<string, unknown>[] => Array.isArray(v) && v.every(isObject);
const isSecretList = (v: unknown): v is { name: string }[] =>
  Array.isArray(v) && v.every((x) => isObject(x) && typeof x.name === 'string');

const BACKENDS = ['auto', 'kernel', 'ebpf', 'userspace'] as const;
const PULL = ['IfNotPresent', 'Always', 'Never'] as const;
const SECCOMP = ['Localhost', 'RuntimeDefault'] as const;

export function podConfigFromEnv(env: Env): Partial<PodConfig> {
  const out: Partial<PodConfig> = {};
  const str = (key: string) => (env[key] === undefined || env[key] === '' ? undefined : env[key]);
  const image = str('DATAPATH_IMAGE');
  if (image) out.image = image;
  const pull = str('DATAPATH_IMAGE_PULL_POLICY');
  if (pull) {
    if (!(PULL as readonly string[]).includes(pull))
      throw new EnvConfigError(`DATAPATH_IMAGE_PULL_POLICY: one of ${PULL.join(', ')}`);
    out.imagePullPolicy = pull as PodConfig['imagePullPolicy'];
  }
  const backend = str('DATAPATH_BACKEND');
  if (backend) {
    if (!(BACKENDS as readonly string[]).includes(backend))
      throw new EnvConfigError(`DATAPATH_BACKEND: one of ${BACKENDS.join(', ')}`);
    out.backend = backend as PodConfig['backend'];
  }
  const sa = str('DATAPATH_SERVICE_ACCOUNT');
  if (sa) out.serviceAccountName = sa;
  const level = str('DATAPATH_LOG_LEVEL');
  if (level) out.logLevel = level;
  const prio = str('DATAPATH_PRIORITY_CLASS_NAME');
  if (prio) out.priorityClassName = prio;
  const ns = json(env, 'DATAPATH_NODE_SELECTOR', isStringMap);
  if (ns) out.nodeSelector = ns;
  const tol = json(env, 'DATAPATH_TOLERATIONS', isObjectList);
  if (tol && tol.length) out.tolerations = tol;
  const res = json(env, 'DATAPATH_RESOURCES', isObject);
  if (res && Object.keys(res).length) out.resources = res;
  const secrets = json(env, 'DATAPATH_IMAGE_PULL_SECRETS', isSecretList);
  if (secrets && secrets.length) out.imagePullSecrets = secrets;
  const bin = str('CNI_BIN_DIR');
  if (bin) out.cniBinDir = bin;
  const conf = str('CNI_CONF_DIR');
  if (conf) out.cniConfDir = conf;
  const data = str('CNI_DATA_DIR');
  if (data) {
    if (!data.startsWith('/')) throw new EnvConfigError(`CNI_DATA_DIR: an absolute path, got ${data}`);
    out.cniDataDir = data;
  }
  const netns = str('NETNS_DIR');
  if (netns) {
    if (!netns.startsWith('/')) throw new EnvConfigError(`NETNS_DIR: an absolute path, got ${netns}`);
    out.netnsDir = netns;
  }
  const metricsHost = str('DATAPATH_METRICS_HOST');
  if (metricsHost) {
    if (metricsHost !== 'node-ip' && isIP(metricsHost) === 0) {
      throw new EnvConfigError(
        `DATAPATH_METRICS_HOST: 127.0.0.1, node-ip, 0.0.0.0 or an IP address, got ${metricsHost}`,
      );
    }
    out.metricsHost = metricsHost;
  }
  const seccomp = str('DATAPATH_SECCOMP_PROFILE');
  if (seccomp) {
    if (!(SECCOMP as readonly string[]).includes(seccomp))
      throw new EnvConfigError(`DATAPATH_SECCOMP_PROFILE: one of ${SECCOMP.join(', ')}, got ${seccomp}`);
    out.seccompProfile = seccomp as PodConfig['seccompProfile'];
  }
  const kubeletRoot = str('KUBELET_ROOT_DIR');
  if (kubeletRoot) {
    if (!kubeletRoot.startsWith('/'))
      throw new EnvConfigError(`KUBELET_ROOT_DIR: an absolute path, got ${kubeletRoot}`);
    out.kubeletRootDir = kubeletRoot;
  }
  const sock = str('AGENT_SOCKET_DIR');
  if (sock) out.socketDir = sock;
  const policy = str('MTU_POLICY') ?? 'derive';
  if (policy !== 'derive' && policy !== 'fixed') throw new EnvConfigError('MTU_POLICY: derive or fixed');
  const underlay = int(env, 'MTU_UNDERLAY', 576, 65535);
  if (underlay !== undefined) out.underlayMtu = underlay;
  if (policy === 'fixed') {
    const fixed = int(env, 'MTU_FIXED', 68, 65535);
    if (fixed === undefined) throw new EnvConfigError('MTU_FIXED: required with MTU_POLICY=fixed');
    out.fixedMtu = fixed;
  }
  return out;
}

export function controllerConfigFromEnv(env: Env): Partial<Omit<ControllerConfig, 'pod'>> {
  const m = env.MULTUS_ENABLED;
  if (m === undefined || m === '') return {};
  if (m !== 'true' && m !== 'false') throw new EnvConfigError(`MULTUS_ENABLED: true or false, got ${m}`);
  return { multus: m === 'true' };
}
