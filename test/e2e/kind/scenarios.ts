// The shared e2e scenarios (test/e2e/scenarios.ts) on a kind cluster: run.sh calls this with two
// worker names once kube-l2tp is installed. kubectl talks to the cluster, `docker exec` gives a shell
// on a node's host. Kind nodes have no tshark: the scenarios check traffic, not the wire.
//   node dist/test/e2e/kind/scenarios.js NODE_A NODE_B
import { execFile } from 'node:child_process';
import { apply, namespaceObj, scenarioSteps, type ExecResult, type ScenarioTarget } from '../scenarios.js';

const KUBECTL = process.env.KUBECTL ?? 'kubectl';
const DOCKER = process.env.DOCKER ?? 'docker';
const NS = 'q-kind';

function run(file: string, args: string[], input?: string, timeoutMs = 120_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const p = execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) p.stdin?.end(input);
  });
}

async function main(nodes: string[]): Promise<number> {
  if (nodes.length < 2) {
    console.error('usage: scenarios.js NODE_A NODE_B');
    return 2;
  }
  const t: ScenarioTarget = {
    nodes,
    toolsImage: process.env.TOOLS_IMAGE ?? 'busybox:1.36',
    kubectl: async (args, input) => {
      const r = await run(KUBECTL, args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    },
    podExec: (pod, cmd, timeoutMs) =>
      run(KUBECTL, ['exec', '-n', pod.namespace, pod.name, '--', ...cmd], undefined, timeoutMs),
    nodeExec: (node, file, args) => run(DOCKER, ['exec', node, file, ...args]),
    progress: (m) => console.log(`  · ${m}`),
  };
  let failed = 0;
  try {
    await apply(t, [namespaceObj(NS)]);
    for (const [name, run] of scenarioSteps()) {
      try {
        await run(t, NS);
        console.log(`ok   - ${name}`);
      } catch (e) {
        failed++;
        console.log(`FAIL - ${name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  } finally {
    await run(KUBECTL, ['delete', 'namespace', NS, '--wait=true', '--timeout=180s']);
    await run(KUBECTL, ['delete', 'l2tptunnel', 'q-red', 'q-blue', '--ignore-not-found']);
  }
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
