import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import YAML from 'yaml';
import { mirrorManifest } from './mirror.js';

// The kernel doc's table: Host 1 tunnel 42/45, ports 5000/5001, sessions 128/5196755.
const host1 = `
apiVersion: l2tp.kube-l2tp.io/v1alpha1
kind: L2TPTunnel
metadata: {name: to-dc2}
spec:
  local: {node: a1, address: 192.0.2.1, tunnelID: 42, udpPort: 5000}
  peer: {external: {address: 198.51.100.2, tunnelID: 45, udpPort: 5001}}
---
apiVersion: l2tp.kube-l2tp.io/v1alpha1
kind: Pseudowire
metadata: {name: red, namespace: lab}
spec:
  tunnelRef: {name: to-dc2}
  sessionID: 128
  peerSessionID: 5196755
  cookie: {value: 0badcafe}
  peerCookie: {secretRef: {name: c, key: peer}}
`;

describe('mirror', () => {
  it('reverses IDs, ports, addresses and cookies as in the kernel doc Host 1 / Host 2 table', () => {
    const out = mirrorManifest(host1, { node: 'b7' });
    const [t, p] = YAML.parseAllDocuments(out).map((d) => d.toJS());
    assert.deepEqual(t.spec.local, { node: 'b7', address: '198.51.100.2', tunnelID: 45, udpPort: 5001 });
    assert.deepEqual(t.spec.peer, { external: { address: '192.0.2.1', tunnelID: 42, udpPort: 5000 } });
    assert.equal(p.spec.sessionID, 5196755);
    assert.equal(p.spec.peerSessionID, 128);
    assert.deepEqual(p.spec.peerCookie, { value: '0badcafe' });
    assert.deepEqual(p.spec.cookie, { secretRef: { name: 'c', key: 'peer' } });
    assert.equal(p.metadata.namespace, 'lab');
    // mirroring twice gives back the original side
    const back = YAML.parseAllDocuments(mirrorManifest(out, { node: 'a1' })).map((d) => d.toJS());
    assert.deepEqual(back[0].spec.local, { node: 'a1', address: '192.0.2.1', tunnelID: 42, udpPort: 5000 });
    assert.equal(back[1].spec.sessionID, 128);
  });

  it('a cookie in one direction only stays in that direction: the other side expects what this one sends', () => {
    const side = (cookies: string) =>
      host1.replace(
        '  cookie: {value: 0badcafe}\n  peerCookie: {secretRef: {name: c, key: peer}}\n',
        cookies,
      );
    const mirrored = (text: string) =>
      YAML.parseAllDocuments(mirrorManifest(text, { node: 'b7' }))[1]!.toJS();
    const sendsOnly = mirrored(side('  cookie: {value: 0badcafe}\n'));
    assert.equal(sendsOnly.spec.cookie, undefined, 'this side expects no cookie: the other sends none');
    assert.deepEqual(sendsOnly.spec.peerCookie, { value: '0badcafe' });
    const expectsOnly = mirrored(side('  peerCookie: {value: 0badcafe}\n'));
    assert.deepEqual(expectsOnly.spec.cookie, { value: '0badcafe' });
    assert.equal(expectsOnly.spec.peerCookie, undefined, 'this side sends no cookie: the other expects none');
  });

  it('refuses in-cluster tunnels and pseudowires without explicit IDs', () => {
    assert.throws(
      () =>
        mirrorManifest('kind: L2TPTunnel\nmetadata: {name: x}\nspec: {local: {node: a}, peer: {node: b}}\n', {
          node: 'z',
        }),
      /peer.external/,
    );
    const noIds = host1.replace('  sessionID: 128\n  peerSessionID: 5196755\n', '');
    assert.throws(() => mirrorManifest(noIds, { node: 'z' }), /needs sessionID and peerSessionID/);
  });
  it('--local-address is what the other side reaches this one at: it wins over the spec and the status', () => {
    // as `kubectl get -o yaml` gives it: the address from the node, recorded in status
    const fromCluster = host1
      .replace('address: 192.0.2.1, ', '')
      .replace('spec:\n  local:', 'status: {localAddress: 10.0.0.9}\nspec:\n  local:');
    const peerOf = (text: string, localAddress?: string) =>
      YAML.parseAllDocuments(
        mirrorManifest(text, { node: 'b7', ...(localAddress ? { localAddress } : {}) }),
      )[0]!.toJS().spec.peer.external.address;
    assert.equal(peerOf(fromCluster), '10.0.0.9', 'without the flag: the address the status records');
    assert.equal(peerOf(fromCluster, '203.0.113.7'), '203.0.113.7');
    // behind a NAT the spec's address is the inside one; the flag gives the one the peer sends to
    assert.equal(peerOf(host1, '203.0.113.7'), '203.0.113.7');
    assert.equal(peerOf(host1), '192.0.2.1');
  });

  it("does not copy a pseudowire's spec.ipam (the other side's pods need addresses of their own), and says so", () => {
    const withIpam = host1.replace(
      '  sessionID: 128\n',
      '  sessionID: 128\n  ipam: {type: host-local, subnet: 192.168.40.0/24}\n',
    );
    const out = mirrorManifest(withIpam, { node: 'b7' });
    const p = YAML.parseAllDocuments(out)[1]!.toJS();
    assert.equal(p.spec.ipam, undefined);
    assert.match(out, /^# Pseudowire lab\/red: spec\.ipam is not copied: .*addresses of its own/m);
    // what else the pseudowire says is mirrored as it was
    assert.equal(p.spec.sessionID, 5196755);
    assert.doesNotMatch(mirrorManifest(host1, { node: 'b7' }), /spec\.ipam/);
  });

  it('grants no namespace of the other cluster: allowedNamespaces is not copied, and the output says what to decide', () => {
    const shared = host1
      .replace('spec:\n  local:', "spec:\n  allowedNamespaces: [lab, '*']\n  local:")
      .replace('  sessionID: 128\n', '  sessionID: 128\n  allowedNamespaces: [finance, tools]\n');
    const out = mirrorManifest(shared, { node: 'b7' });
    const [t, p] = YAML.parseAllDocuments(out).map((d) => d.toJS());
    // the tunnel lists none, in plain sight: every Pseudowire there is refused until that cluster's
    // admin lists its namespaces
    assert.deepEqual(t.spec.allowedNamespaces, []);
    assert.match(
      out,
      /^# L2TPTunnel to-dc2: spec\.allowedNamespaces is not copied .* the Pseudowires here are in lab: list those it shares the tunnel with, or they are refused \(TunnelNotAllowed\)$/m,
    );
    // the pseudowire falls back to its own namespace's pods only
    assert.equal(p.spec.allowedNamespaces, undefined);
    assert.match(
      out,
      /^# Pseudowire lab\/red: spec\.allowedNamespaces is not copied: .*only pods of its own namespace/m,
    );
    // neither side's list appears anywhere in the output
    assert.doesNotMatch(out, /finance|tools|'\*'|"\*"/);
    // a tunnel that shared nothing mirrors the same, and a pseudowire that shared nothing gets no note
    const plain = mirrorManifest(host1, { node: 'b7' });
    assert.deepEqual(YAML.parseAllDocuments(plain)[0]!.toJS().spec.allowedNamespaces, []);
    assert.match(plain, /^# L2TPTunnel to-dc2: spec\.allowedNamespaces is not copied/m);
    assert.doesNotMatch(plain, /^# Pseudowire .*allowedNamespaces/m);
    // a tunnel alone: nothing may use it there until its namespaces are listed
    const alone = mirrorManifest(host1.slice(0, host1.indexOf('---')), { node: 'b7' });
    assert.match(alone, /left empty: no Pseudowire may use the tunnel until it lists their namespaces$/m);
  });
});
