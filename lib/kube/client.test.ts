// The client's credentials over time: what a long-running operator or agent sends once the kubelet
// has rotated its ServiceAccount token.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it, mock } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from './client.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  mock.timers.reset();
  for (const f of cleanup.splice(0)) f();
});

describe('KubeClient credentials', () => {
  it('sends the rotated ServiceAccount token, read again every minute as client-go does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kube-client-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'first');
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => server.close());
    const kc = new KubeConfig();
    // what loadFromCluster makes of a pod's ServiceAccount mount
    kc.loadFromOptions({
      clusters: [
        {
          name: 'c',
          server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          skipTLSVerify: true,
        },
      ],
      users: [{ name: 'u', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const client = new KubeClient(kc);
    cleanup.push(() => client.close());
    await client.get('/api/v1/namespaces');
    // the kubelet rotates the projected token; the old one expires (within the hour, or the 90 days
    // some providers allow)
    writeFileSync(tokenFile, 'second');
    await client.get('/api/v1/namespaces');
    mock.timers.tick(61_000);
    await client.get('/api/v1/namespaces');
    assert.deepEqual(seen, ['Bearer first', 'Bearer first', 'Bearer second']);
  });
});
