// Fixed-budget property fuzzing of the pure decoders and parsers (see test/fuzz/README.md).
import { PURE_TARGETS } from './properties.js';
import { registerFuzzTests } from './suite.js';

registerFuzzTests(PURE_TARGETS);
