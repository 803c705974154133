import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import type { InspectionEvent } from 'xstate';

export type StatelyMessage = StatelyInspectionEvent;

/**
 * Turns XState's inspection events into the Stately inspector's messages with `@statelyai/inspect` itself
 * (`createInspector`, the converter behind its browser and WebSocket inspectors), and hands them to `publish`
 * in-process: no socket hop, no reconnect loop and no 200-event limit between the run and the relay.
 */
export function liveConverter(publish: (message: StatelyMessage) => void): {
  inspect: (event: InspectionEvent) => void;
  /** Resolves once every event inspected so far has been published. */
  flush: () => Promise<void>;
} {
  const inspector = createInspector({ send: publish });
  // The package converts each event on a later timer tick (its "idle callback" in Node). Timers run in the
  // order they were set, so a tick set right after it tells when that event has been published.
  let pending = 0;
  const whenIdle: (() => void)[] = [];
  return {
    inspect: (event) => {
      inspector.inspect.next?.(event);
      pending += 1;
      setTimeout(() => {
        pending -= 1;
        if (pending === 0) for (const wake of whenIdle.splice(0)) wake();
      }, 0);
    },
    flush: async () => {
      // Let the current macrostep finish first: a child's last snapshot is announced after its parent moved.
      await new Promise((resolveTick) => setImmediate(resolveTick));
      if (pending > 0) await new Promise<void>((resolveIdle) => whenIdle.push(resolveIdle));
    },
  };
}
