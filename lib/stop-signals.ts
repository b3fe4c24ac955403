// SIGTERM and SIGINT, caught from a command's first moment. Node's default action for them ends the
// process at once: a datapath command asked to stop while it is still starting (a datapath pod
// deleted as it starts) would die without its stop procedure, and what it decides on stop (remove
// the node's devices, or keep them) would not happen. Caught early, the signal waits until the
// command is up and is then answered as any other.
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** The first stop signal from now on; a second one ends the process as Node's default does. */
export function catchStopSignals(proc: Pick<NodeJS.Process, 'once'> = process): Promise<StopSignal> {
  return new Promise((resolve) => {
    for (const s of STOP_SIGNALS) proc.once(s, () => resolve(s));
  });
}
