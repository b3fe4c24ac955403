#!/usr/bin/env node
// kube-l2tp-datapath: the node datapath (its subcommands: commands.ts). Stop signals are caught before
// the commands are loaded, which takes a while: a signal in that time would otherwise end the process
// by Node's default action.
import { catchStopSignals } from '../lib/stop-signals.js';

const stop = catchStopSignals();
const { main } = await import('./commands.js');
const code = await main(process.argv.slice(2), stop);
process.exitCode = code;
// A command that failed half-way may still hold handles (a probe server, a pump thread): exit anyway,
// so a datapath pod whose start failed is restarted instead of answering /healthz with nothing behind it.
if (code !== 0) setTimeout(() => process.exit(code), 200).unref();
