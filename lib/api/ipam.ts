// One answer to "may this IPAM configuration run?", for both places one is written: a Pseudowire's
// spec.ipam (the operator) and a hand-written network config (the CNI side). A tenant who writes a
// NetworkAttachmentDefinition by hand gets no more than one who writes a Pseudowire.
import { IPAM_TYPES, ipamSchemaFor } from './schemas.js';

const schemas = new WeakMap<readonly string[], ReturnType<typeof ipamSchemaFor>>();

/**
 * Why an "ipam" object is refused by spec.ipam's rules (lib/api/schemas.ts), or undefined. Each problem
 * is named by its path under `at` ("ipam" in a network config, "spec.ipam" on a Pseudowire); the
 * node-files rule comes first: it says what to remove.
 */
export function ipamProblem(
  ipam: unknown,
  opts: { types?: readonly string[] | undefined; at?: string } = {},
): string | undefined {
  const types = opts.types ?? IPAM_TYPES;
  let schema = schemas.get(types);
  if (schema === undefined) {
    schema = ipamSchemaFor(types as readonly [string, ...string[]]);
    schemas.set(types, schema);
  }
  const r = schema.safeParse(ipam);
  if (r.success) return undefined;
  const issues = [...r.error.issues].sort(
    (a, b) => Number(b.code === 'custom') - Number(a.code === 'custom'),
  );
  const at = opts.at ?? 'ipam';
  return issues.map((i) => `${[at, ...i.path.map(String)].join('.')}: ${i.message}`).join('; ');
}
