// The eBPF backend's entry point for backend selection.
export { createEbpfBackend, EbpfBackend, DEFAULT_BPFFS, type EbpfBackendOptions } from './backend.js';
