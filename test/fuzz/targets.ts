// Every fuzz target, in the order the bench runs them.
import type { FuzzTarget } from './framework.js';
import { nativeWireTarget } from './native-wire.js';
import { PURE_TARGETS } from './properties.js';
import { serverTarget } from './server-target.js';

export const ALL_TARGETS: readonly FuzzTarget[] = [...PURE_TARGETS, serverTarget, nativeWireTarget];
