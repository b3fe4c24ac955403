// Fixed-budget fuzzing of the agent's CNI socket server and of the pump's C decoder (ASan+UBSan).
import { nativeWireTarget } from './native-wire.js';
import { serverTarget } from './server-target.js';
import { registerFuzzTests } from './suite.js';

registerFuzzTests([serverTarget, nativeWireTarget]);
