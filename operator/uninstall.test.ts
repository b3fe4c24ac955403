// The uninstall hook's pure parts: which pods count as attached to a pseudowire (Multus's two
// annotation forms, generated and hand-written NADs, finished pods), and whose finalizers it removes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UninstallRefused, attachedPods, ourFinalizers, parseNetworks, usesKubeL2tp } from './uninstall.js';

const nad = (namespace: string, name: string, config: unknown) => ({
  metadata: { namespace, name },
  spec: { config: JSON.stringify(config) },
});
const pod = (namespace: string, name: string, networks?: string, phase = 'Running') => ({
  metadata: {
    namespace,
    name,
    ...(networks ? { annotations: { 'k8s.v1.cni.cncf.io/networks': networks } } : {}),
  },
  status: { phase },
});

describe('uninstall hook', () => {
  it('reads both forms of the networks annotation; a bare name is in the pod namespace', () => {
    assert.deepEqual(parseNetworks('red-wire', 'demo'), [{ namespace: 'demo', name: 'red-wire' }]);
    assert.deepEqual(parseNetworks(' other/blue@eth9 , green ', 'demo'), [
      { namespace: 'other', name: 'blue' },
      { namespace: 'demo', name: 'green' },
    ]);
    assert.deepEqual(
      parseNetworks('[{"name":"red-wire","interface":"net5"},{"name":"x","namespace":"o"}]', 'demo'),
      [
        { namespace: 'demo', name: 'red-wire' },
        { namespace: 'o', name: 'x' },
      ],
    );
    assert.deepEqual(parseNetworks('[{"interface":"net5"}', 'demo'), [], 'broken JSON: nothing');
    assert.deepEqual(parseNetworks(undefined, 'demo'), []);
    assert.deepEqual(parseNetworks('', 'demo'), []);
  });

  it('a NAD is ours when its config (or a conflist plugin) is of type kube-l2tp', () => {
    assert.equal(usesKubeL2tp(nad('d', 'a', { type: 'kube-l2tp' })), true);
    assert.equal(usesKubeL2tp(nad('d', 'b', { plugins: [{ type: 'kube-l2tp' }, { type: 'tuning' }] })), true);
    assert.equal(usesKubeL2tp(nad('d', 'c', { type: 'macvlan' })), false);
    assert.equal(usesKubeL2tp({ metadata: { name: 'e' }, spec: { config: '{' } }), false);
    assert.equal(usesKubeL2tp({ metadata: { name: 'f' } }), false);
  });

  it('lists live pods on kube-l2tp networks only, with the network they use', () => {
    const nads = [
      nad('demo', 'red-wire', { type: 'kube-l2tp' }),
      nad('demo', 'mac', { type: 'macvlan' }),
      nad('other', 'hand-written', { type: 'kube-l2tp' }),
    ];
    const pods = [
      pod('demo', 'pod-a', 'red-wire'),
      pod('demo', 'pod-b', 'red-wire,red-wire@net2'),
      pod('demo', 'on-macvlan', 'mac'),
      pod('demo', 'plain'),
      pod('demo', 'done', 'red-wire', 'Succeeded'),
      pod('demo', 'failed', 'red-wire', 'Failed'),
      pod('x', 'cross-ns', 'other/hand-written'),
      pod('x', 'same-name-other-ns', 'red-wire'),
    ];
    assert.deepEqual(attachedPods(pods, nads), [
      'demo/pod-a (demo/red-wire)',
      'demo/pod-b (demo/red-wire)',
      'x/cross-ns (other/hand-written)',
    ]);
    assert.deepEqual(attachedPods(pods, []), [], 'no kube-l2tp NAD: nothing attached');
  });

  it('removes only kube-l2tp finalizers; the refusal names the pods and the way out', () => {
    assert.deepEqual(ourFinalizers(['l2tp.kube-l2tp.io/teardown', 'foregroundDeletion', 'example.com/x']), [
      'l2tp.kube-l2tp.io/teardown',
    ]);
    assert.deepEqual(ourFinalizers(undefined), []);
    const e = new UninstallRefused(['demo/pod-a (demo/red-wire)']);
    assert.match(e.message, /demo\/pod-a/);
    assert.match(e.message, /uninstall\.attachedPods=proceed/);
  });
});
