/** XState's clock plus `now`: the wall clock in production, a `SimulatedClock` in tests and replay. */
export interface Clock {
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  now(): number;
}

export const systemClock: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
  now: () => Date.now(),
};

/**
 * `clock.now()`, read once per synchronous burst of the engine and held until the burst ends: a transition's
 * actions and its journal line read the same time, so replay (which sets its clock to each line's time)
 * computes the very same times.
 */
export function burstTime(clock: Clock): () => number {
  // One per clock: the drives on one clock share it, and so their machines (see sharedMachines).
  let time = burstTimes.get(clock);
  if (!time) burstTimes.set(clock, (time = heldPerBurst(clock)));
  return time;
}

const burstTimes = new WeakMap<Clock, () => number>();

function heldPerBurst(clock: Clock): () => number {
  let held: number | null = null;
  return () => {
    if (held === null) {
      held = clock.now();
      queueMicrotask(() => {
        held = null;
      });
    }
    return held;
  };
}
