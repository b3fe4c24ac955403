import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forbiddenInRuntime } from './runtime-contents.js';

test('package managers, build tools, toolchain directories, dev packages and sources are named', () => {
  const bad = [
    'usr/local/bin/npm',
    'usr/local/bin/npx',
    'usr/local/bin/corepack',
    'usr/local/lib/node_modules',
    'opt/yarn-v1.22.22',
    'usr/bin/gcc-12',
    'usr/bin/make',
    'usr/bin/python3.11',
    'usr/include',
    'app/node_modules/typescript',
    'app/datapath/native/src/pump.c',
  ];
  const good = [
    'usr/local/bin/node',
    'usr/local/bin/kube-l2tp-datapath',
    'bin/ip',
    'sbin/tc',
    'app/node_modules/pino',
    'app/node_modules/typescript-is-not-here/index.js',
    'app/node_modules/zod/src/index.h', // inside a dependency: not ours to judge
    'usr/lib/x86_64-linux-gnu/libc.so.6',
    'app/datapath/native/build/Release/l2tp_pump.node',
    'app/datapath/backend/ebpf/build/l2tp.bpf.o',
    'app/node_modules/@types',
  ];
  assert.deepEqual(
    forbiddenInRuntime([...bad, ...good]).map((x) => x.split(':')[0]),
    bad,
  );
});
