import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../machines/backoff.js';
import { answer, busy, DEFAULT_RETRY, flush, iterationHarness } from '../helpers/iteration-harness.js';

const EIGHT = ['building', 'prompting', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting'];

describe('iteration machine', () => {
  it('passes through the pipeline in order and outputs the iteration record', async () => {
    const h = iterationHarness([answer('done')]);
    h.actor.start();
    const record = await h.done;
    expect(record.states).toEqual(EIGHT);
    expect(h.visited).toEqual([...EIGHT, 'complete']);
    expect(record.attempts).toBe(1);
    expect(record.retryDelaysMs).toEqual([]);
    expect(record.decision).toBe('proceed');
    expect(record.failure).toBeNull();
  });

  it('waits in retryingSessionLock with delays 2.0, 3.0, 4.5, 6.75, 10.125 s (delayed transitions on the simulated clock)', async () => {
    const h = iterationHarness([busy, busy, busy, busy, busy, answer('finally')]);
    h.actor.start();
    const expected = [2000, 3000, 4500, 6750, 10125];
    for (const [i, delay] of expected.entries()) {
      await flush();
      expect(h.actor.getSnapshot().value).toBe('retryingSessionLock');
      expect(h.actor.getSnapshot().context.retries).toBe(i + 1);
      // One millisecond short of the delay: still waiting, no new call.
      h.clock.increment(delay - 1);
      await flush();
      expect(h.actor.getSnapshot().value).toBe('retryingSessionLock');
      expect(h.calls).toHaveLength(i + 1);
      h.clock.increment(1);
      await flush();
      expect(h.calls).toHaveLength(i + 2);
    }
    const record = await h.done;
    expect(record.retryDelaysMs).toEqual(expected);
    expect(record.attempts).toBe(6);
    // The calls happened exactly at the cumulative backoff times.
    expect(h.calls.map((c) => c.at)).toEqual([0, 2000, 5000, 9500, 16250, 26375]);
    expect(record.states).toEqual([
      'building', 'prompting',
      'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'retryingSessionLock',
      'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent',
      'validating', 'scoring', 'deciding', 'persisting',
    ]);
  });

  it('ends with a clear failure reason, not an exception, when retries run out', async () => {
    const h = iterationHarness([busy], { retry: { ...DEFAULT_RETRY, maxRetries: 2 } });
    h.actor.start();
    await flush();
    h.clock.increment(2000);
    await flush();
    h.clock.increment(3000);
    await flush();
    const record = await h.done;
    expect(h.actor.getSnapshot().status).toBe('done');
    expect(record.decision).toBe('fail');
    expect(record.decisionRule).toBe('iterationFailed');
    expect(record.failure).toMatch(/still busy after 2 retries \(waited 5\.000s\)/);
    expect(record.states).toEqual(['building', 'prompting', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'persisting']);
    expect(record.validation).toBeNull();
  });

  it('leaves the wait at once when the session is released (an event, not a poll)', async () => {
    const h = iterationHarness([busy, answer('ok')]);
    h.actor.start();
    await flush();
    expect(h.actor.getSnapshot().value).toBe('retryingSessionLock');
    h.clock.increment(500);
    h.actor.send({ type: 'SESSION_RELEASED' });
    await flush();
    const record = await h.done;
    expect(h.calls.map((c) => c.at)).toEqual([0, 500]);
    expect(record.attempts).toBe(2);
  });

  it('switches to --resume at once when creating a session it already created (no wait)', async () => {
    const h = iterationHarness([busy, answer('ok')], { sessionStarted: false });
    h.actor.start();
    const record = await h.done;
    expect(h.calls.map((c) => c.mode)).toEqual(['create', 'resume']);
    expect(h.calls.map((c) => c.at)).toEqual([0, 0]);
    expect(record.retryDelaysMs).toEqual([]);
    expect(record.states).toEqual(EIGHT);
  });

  it('starts a fresh session when the conversation is gone', async () => {
    const h = iterationHarness([{ kind: 'noConversation', message: 'No conversation found with session ID: s-1' }, answer('ok', 'new-session')]);
    h.actor.start();
    const record = await h.done;
    expect(h.calls).toEqual([
      { at: 0, sessionId: 's-1', mode: 'resume' },
      { at: 0, sessionId: null, mode: 'create' },
    ]);
    expect(record.sessionId).toBe('new-session');
  });

  it('fails the iteration with the agent message on a fatal outcome', async () => {
    const h = iterationHarness([{ kind: 'fatal', message: 'the agent binary was not found: claude' }]);
    h.actor.start();
    const record = await h.done;
    expect(record.failure).toBe('agent call failed: the agent binary was not found: claude');
    expect(record.states).toEqual(['building', 'prompting', 'awaitingAgent', 'persisting']);
  });

  it('after a restore, re-entering the wait schedules only the remaining time', async () => {
    const h = iterationHarness([busy, answer('ok')]);
    h.actor.start();
    await flush();
    h.clock.increment(1200);
    const persisted = h.actor.getPersistedSnapshot();
    h.actor.stop();

    // A new actor from the snapshot, on the same clock: the pending `after` was not persisted (XState #5331),
    // so without RESUMED it would wait forever; with it, it waits 2000 - 1200 = 800 ms.
    const { createActor } = await import('xstate');
    const restored = createActor(h.machine, { snapshot: persisted as never, clock: h.clock, input: undefined as never });
    const done = new Promise<void>((resolve) => restored.subscribe({ complete: () => resolve() }));
    restored.start();
    restored.send({ type: 'RESUMED' });
    expect(restored.getSnapshot().value).toBe('retryingSessionLock');
    h.clock.increment(799);
    await flush();
    expect(h.calls).toHaveLength(1);
    h.clock.increment(1);
    await flush();
    await done;
    expect(h.calls).toHaveLength(2);
    expect(h.calls[1]!.at).toBe(2000);
    expect(restored.getSnapshot().output!.retryDelaysMs).toEqual([2000]);
    expect(restored.getSnapshot().output!.states.filter((s) => s === 'retryingSessionLock')).toHaveLength(1);
  });
});

describe('backoffDelayMs', () => {
  it('grows by the backoff factor and is capped by retry_max_delay', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelayMs(n, DEFAULT_RETRY))).toEqual([2000, 3000, 4500, 6750, 10125]);
    expect(backoffDelayMs(10, { ...DEFAULT_RETRY, maxDelayMs: 20_000 })).toBe(20_000);
  });

  it('applies full and equal jitter within their bounds', () => {
    expect(backoffDelayMs(2, { ...DEFAULT_RETRY, jitter: 'full' }, () => 0.5)).toBe(1500);
    expect(backoffDelayMs(2, { ...DEFAULT_RETRY, jitter: 'equal' }, () => 0)).toBe(1500);
    expect(backoffDelayMs(2, { ...DEFAULT_RETRY, jitter: 'equal' }, () => 1)).toBe(3000);
  });
});
