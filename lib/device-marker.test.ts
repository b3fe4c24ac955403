import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  formatBridgeMarker,
  formatMarker,
  markedL2spec,
  marksBridge,
  marksSession,
  parseBridgeMarker,
  parseMarker,
} from './device-marker.js';

describe('device ownership marker', () => {
  it('formats one exact string, with or without the sublayer type', () => {
    assert.equal(
      formatMarker({ tunnelId: 42, sessionId: 4294967295 }),
      'kube-l2tp tunnel=42 session=4294967295',
    );
    assert.equal(
      formatMarker({ tunnelId: 100, sessionId: 1001, l2spec: 'none' }),
      'kube-l2tp tunnel=100 session=1001 l2spec=none',
    );
  });

  it('refuses IDs the kernel would not hold', () => {
    assert.throws(() => formatMarker({ tunnelId: 0, sessionId: 1 }), {
      name: 'RangeError',
      message: 'marker IDs must be non-zero 32-bit integers: tunnel 0, session 1',
    });
    assert.throws(() => formatMarker({ tunnelId: 1, sessionId: 4294967296 }), RangeError);
    assert.throws(() => formatMarker({ tunnelId: 1.5, sessionId: 1 }), RangeError);
  });

  it('parses what it formats, and nothing else', () => {
    assert.deepEqual(parseMarker('kube-l2tp tunnel=42 session=4294967295'), {
      tunnelId: 42,
      sessionId: 4294967295,
    });
    assert.deepEqual(parseMarker('kube-l2tp tunnel=100 session=1001 l2spec=default'), {
      tunnelId: 100,
      sessionId: 1001,
      l2spec: 'default',
    });
    for (const foreign of [
      undefined,
      '',
      'kube-l2tp',
      'kube-l2tp l2spec=none',
      'kube-l2tp tunnel=1',
      'kube-l2tp tunnel=1 session=2 ',
      ' kube-l2tp tunnel=1 session=2',
      'kube-l2tp tunnel=1 session=2 l2spec=other',
      'kube-l2tp tunnel=1 session=2 owner=me',
      'kube-l2tp session=2 tunnel=1',
      'kube-l2tp tunnel=01 session=2',
      'kube-l2tp tunnel=0 session=2',
      'kube-l2tp tunnel=1 session=4294967296',
      'kube-l2tp tunnel=1 session=99999999999',
      'kube-l2tpx tunnel=1 session=2',
      'kube-l2tp by hand',
      'uplink to router',
    ]) {
      assert.equal(parseMarker(foreign), undefined, `alias ${JSON.stringify(foreign)}`);
    }
  });

  it('a kernel session is ours when its marker names it, or carries the previous release marker', () => {
    const current = formatMarker({ tunnelId: 100, sessionId: 1001, l2spec: 'none' });
    assert.equal(marksSession(current, 100, 1001), true);
    assert.equal(marksSession(current, 100, 1002), false, 'a marker naming another session');
    assert.equal(marksSession(current, 101, 1001), false);
    // written by the previous release's kernel backend: adopted, so an upgrade orphans nothing
    assert.equal(marksSession('kube-l2tp', 100, 1001), true);
    assert.equal(marksSession('kube-l2tp l2spec=default', 100, 1001), true);
    assert.equal(marksSession('kube-l2tp l2spec=none', 7, 8), true);
    for (const foreign of [
      undefined,
      '',
      'kube-l2tp ',
      'kube-l2tp l2spec=x',
      'kube-l2tp by hand',
      'kube-l2tpx',
    ]) {
      assert.equal(marksSession(foreign, 100, 1001), false, `alias ${JSON.stringify(foreign)}`);
    }
  });

  it('reads the sublayer type from either format', () => {
    assert.equal(markedL2spec('kube-l2tp tunnel=1 session=2 l2spec=none'), 'none');
    assert.equal(markedL2spec('kube-l2tp tunnel=1 session=2'), undefined);
    assert.equal(markedL2spec('kube-l2tp l2spec=default'), 'default');
    assert.equal(markedL2spec('kube-l2tp'), undefined);
    assert.equal(markedL2spec('someone l2spec=none'), undefined);
    assert.equal(markedL2spec(undefined), undefined);
  });

  it('an attachment bridge is marked with its pseudowire, and only that marker is its own', () => {
    const pw = { namespace: 'kc', name: 'grey-wire' };
    assert.equal(formatBridgeMarker(pw), 'kube-l2tp bridge=kc/grey-wire');
    assert.equal(marksBridge('kube-l2tp bridge=kc/grey-wire', pw), true);
    for (const other of [
      undefined,
      'kube-l2tp bridge=kc/grey-wire2',
      'kube-l2tp bridge=other/grey-wire',
      'kube-l2tp bridge kc/grey-wire',
      'kube-l2tp tunnel=1 session=2',
      'kube-l2tp',
    ]) {
      assert.equal(marksBridge(other, pw), false, `alias ${JSON.stringify(other)}`);
    }
    assert.equal(parseMarker('kube-l2tp bridge=kc/grey-wire'), undefined, 'not a session device marker');
    assert.deepEqual(parseBridgeMarker('kube-l2tp bridge=kc/grey-wire.v2'), {
      namespace: 'kc',
      name: 'grey-wire.v2',
    });
    for (const other of [
      undefined,
      'kube-l2tp bridge=kc/',
      'kube-l2tp bridge=/grey',
      'kube-l2tp bridge=Kc/grey',
      'kube-l2tp bridge=kc/grey wire',
      'kube-l2tp bridge=kc/grey/x',
      'kube-l2tp bridge kc/grey',
      'kube-l2tp tunnel=1 session=2',
    ]) {
      assert.equal(parseBridgeMarker(other), undefined, `alias ${JSON.stringify(other)}`);
    }
  });
});
