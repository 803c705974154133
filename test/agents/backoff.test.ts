import { describe, expect, it } from 'vitest';
import { backoffDelayMs, seededUnit } from '../../machines/backoff.js';
import type { AgentOutcome, RetryPolicy } from '../../src/core/types.js';
import { answer, busy, DEFAULT_RETRY, flush, iterationHarness } from '../helpers/iteration-harness.js';

const lockBusy: AgentOutcome = { kind: 'sessionBusy', holder: 'another task in this process', message: 'Session s-1 is in use by another task in this process' };
const rate429: AgentOutcome = { kind: 'rateLimited', status: 429, message: 'API Error: Request rejected (429) · rate_limit_error' };
const rate529: AgentOutcome = { kind: 'rateLimited', status: 529, message: 'API Error: Repeated 529 Overloaded errors.' };
const RATE = { maxRetries: 4, initialDelayMs: 15_000, backoff: 2, maxDelayMs: 300_000, jitter: 'none' as const };
const POLICY: RetryPolicy = { ...DEFAULT_RETRY, rateLimit: RATE };

/** Advances the simulated clock through every wait; returns the waits it saw (state, delay) in order. */
async function driveWaits(h: ReturnType<typeof iterationHarness>, limit = 20) {
  const waits: { kind: string; delayMs: number; attempt: number; maxRetries: number; dueAt: number }[] = [];
  for (let i = 0; i < limit; i++) {
    await flush();
    const snapshot = h.actor.getSnapshot();
    if (snapshot.status !== 'active' || snapshot.value !== 'retryingSessionLock') break;
    const wait = snapshot.context.wait!;
    expect(wait.dueAt).toBe(h.clock.now() + wait.delayMs);
    waits.push({ kind: wait.kind, delayMs: wait.delayMs, attempt: wait.attempt, maxRetries: wait.maxRetries, dueAt: wait.dueAt });
    // One millisecond short: no new call. Then the rest: the retry (and whatever follows at once).
    const callsBefore = h.calls.length;
    h.clock.increment(wait.delayMs - 1);
    await flush();
    expect(h.calls).toHaveLength(callsBefore);
    h.clock.increment(1);
    await flush();
    expect(h.calls.length).toBeGreaterThan(callsBefore);
    expect(h.calls[callsBefore]!.at).toBe(wait.dueAt);
  }
  return waits;
}

describe('backoff as delayed transitions (SimulatedClock)', () => {
  it('waits 2.0, 3.0, 4.5, 6.75, 10.125 s with the defaults, each call exactly at its due time', async () => {
    const h = iterationHarness([busy, busy, busy, busy, busy, answer('ok')], { retry: POLICY });
    h.actor.start();
    const waits = await driveWaits(h);
    expect(waits.map((w) => w.delayMs)).toEqual([2000, 3000, 4500, 6750, 10_125]);
    expect(waits.map((w) => `${w.kind} ${w.attempt}/${w.maxRetries}`)).toEqual([1, 2, 3, 4, 5].map((n) => `sessionBusy ${n}/5`));
    expect(h.calls.map((c) => c.at)).toEqual([0, 2000, 5000, 9500, 16_250, 26_375]);
    const record = await h.done;
    expect(record.retryDelaysMs).toEqual([2000, 3000, 4500, 6750, 10_125]);
    expect(record.attempts).toBe(6);
  });

  it('caps one wait at retry_max_delay', async () => {
    const h = iterationHarness([busy, busy, busy, busy, busy, answer('ok')], { retry: { ...POLICY, maxDelayMs: 4000 } });
    h.actor.start();
    expect((await driveWaits(h)).map((w) => w.delayMs)).toEqual([2000, 3000, 4000, 4000, 4000]);
  });

  it('full and equal jitter: within their bounds, seeded by run/iteration/call so a replay waits the same', async () => {
    for (const jitter of ['full', 'equal'] as const) {
      const policy = { ...POLICY, jitter };
      const run = async (runId: string) => {
        const h = iterationHarness([busy, busy, busy, answer('ok')], { retry: policy, runId });
        h.actor.start();
        return (await driveWaits(h)).map((w) => w.delayMs);
      };
      const a = await run('run-a');
      const again = await run('run-a');
      const b = await run('run-b');
      expect(again).toEqual(a);
      expect(b).not.toEqual(a);
      // Exactly what the formula gives with the seeded random number of each call.
      expect(a).toEqual([1, 2, 3].map((n) => backoffDelayMs(n, policy, () => seededUnit(`run-a/1/${n}`))));
      for (const [i, delay] of a.entries()) {
        const cap = 2000 * 1.5 ** i;
        expect(delay).toBeLessThanOrEqual(cap);
        expect(delay).toBeGreaterThanOrEqual(jitter === 'equal' ? cap / 2 : 0);
      }
    }
  });

  it('seededUnit spreads keys over [0, 1)', () => {
    const values = Array.from({ length: 2000 }, (_, i) => seededUnit(`run/${i}/1`));
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    const buckets = [0, 0, 0, 0];
    for (const v of values) buckets[Math.floor(v * 4)]!++;
    for (const count of buckets) expect(count).toBeGreaterThan(400);
  });

  it('on_lock_exhausted: fail ends the iteration with the reason and the total wait', async () => {
    const h = iterationHarness([busy], { retry: { ...POLICY, maxRetries: 2 } });
    h.actor.start();
    expect((await driveWaits(h)).map((w) => w.delayMs)).toEqual([2000, 3000]);
    const record = await h.done;
    expect(record.failure).toBe('session s-1 still busy after 2 retries (waited 5.000s); set agent.local.on_lock_exhausted: fresh to continue in a new session instead');
    expect(record.decision).toBe('fail');
  });

  it('on_lock_exhausted: fresh continues in a new session at once, with the retries reset and a note why', async () => {
    const h = iterationHarness([busy, busy, busy, answer('ok', 'new-session')], { retry: { ...POLICY, maxRetries: 2, onExhausted: 'fresh' } });
    h.actor.start();
    expect((await driveWaits(h)).map((w) => w.delayMs)).toEqual([2000, 3000]);
    const record = await h.done;
    expect(h.calls.map((c) => `${c.at} ${c.mode} ${c.sessionId}`)).toEqual(['0 resume s-1', '2000 resume s-1', '5000 resume s-1', '5000 create null']);
    expect(record.failure).toBeNull();
    expect(record.sessionId).toBe('new-session');
    expect(record.sessionNotes).toEqual([
      "session s-1 was still in use after 2 retries (the CLI kept refusing it): continuing in a new session; the prompt carries the task's history",
    ]);
  });

  it('rate limited / overloaded: its own policy and counter (15, 30 s), independent of the session waits', async () => {
    const h = iterationHarness([busy, rate429, busy, rate529, answer('ok')], { retry: POLICY });
    h.actor.start();
    const waits = await driveWaits(h);
    expect(waits.map((w) => `${w.kind} ${w.delayMs} ${w.attempt}/${w.maxRetries}`)).toEqual([
      'sessionBusy 2000 1/5',
      'rateLimited 15000 1/4',
      'sessionBusy 3000 2/5',
      'rateLimited 30000 2/4',
    ]);
    const record = await h.done;
    expect(record.retryDelaysMs).toEqual([2000, 15_000, 3000, 30_000]);
    expect(record.failure).toBeNull();
  });

  it('a session release does not cut a rate-limit wait short, but does end a session wait', async () => {
    const h = iterationHarness([rate429, lockBusy, answer('ok')], { retry: POLICY });
    h.actor.start();
    await flush();
    expect(h.actor.getSnapshot().context.wait?.kind).toBe('rateLimited');
    h.actor.send({ type: 'SESSION_RELEASED' });
    await flush();
    expect(h.actor.getSnapshot().value).toBe('retryingSessionLock');
    expect(h.calls).toHaveLength(1);
    h.clock.increment(15_000);
    await flush();
    expect(h.actor.getSnapshot().context.wait?.kind).toBe('sessionBusy');
    h.clock.increment(10);
    h.actor.send({ type: 'SESSION_RELEASED' });
    await flush();
    await h.done;
    expect(h.calls.map((c) => c.at)).toEqual([0, 15_000, 15_010]);
  });

  it('rate limits that never clear end the iteration with the API message', async () => {
    const h = iterationHarness([rate529], { retry: { ...POLICY, rateLimit: { ...RATE, maxRetries: 2 } } });
    h.actor.start();
    expect((await driveWaits(h)).map((w) => w.delayMs)).toEqual([15_000, 30_000]);
    const record = await h.done;
    expect(record.failure).toBe('the API was still rate limited or overloaded (529) after 2 retries (waited 45.0s): API Error: Repeated 529 Overloaded errors.');
    expect(record.states.filter((s) => s === 'retryingSessionLock')).toHaveLength(2);
  });

  it('waiting for a holder that is Obra itself never runs out: its release ends the wait, the timer is a safety net', async () => {
    const h = iterationHarness([lockBusy, lockBusy, lockBusy, lockBusy, lockBusy, lockBusy, lockBusy, lockBusy, answer('ok')], { retry: { ...POLICY, maxRetries: 2, maxDelayMs: 5000 } });
    h.actor.start();
    const waits = await driveWaits(h);
    expect(waits.map((w) => w.delayMs)).toEqual([2000, 3000, 4500, 5000, 5000, 5000, 5000, 5000]);
    const record = await h.done;
    expect(record.failure).toBeNull();
    expect(h.actor.getSnapshot().context.retries).toBe(0);
    expect(h.actor.getSnapshot().context.wait?.holder).toBe('another task in this process');
  });

  it('without a rate-limit policy (runs saved before it existed) the session policy applies', async () => {
    const h = iterationHarness([rate429, answer('ok')], { retry: DEFAULT_RETRY });
    h.actor.start();
    expect((await driveWaits(h)).map((w) => w.delayMs)).toEqual([2000]);
  });
});

describe('session outcomes routed by the iteration machine', () => {
  it('"already in use" from the CLI while creating: resume at once, with a note; from our lock: wait', async () => {
    const cli = iterationHarness([busy, answer('ok')], { sessionStarted: false, retry: POLICY });
    cli.actor.start();
    const record = await cli.done;
    expect(cli.calls.map((c) => `${c.at} ${c.mode}`)).toEqual(['0 create', '0 resume']);
    expect(record.sessionNotes).toEqual(['session s-1 already exists (an earlier call created it): resuming it with --resume instead of waiting']);

    const lock = iterationHarness([lockBusy, answer('ok')], { sessionStarted: false, retry: POLICY });
    lock.actor.start();
    expect((await driveWaits(lock)).map((w) => w.delayMs)).toEqual([2000]);
    expect(lock.calls.map((c) => `${c.at} ${c.mode}`)).toEqual(['0 create', '2000 create']);
  });

  it('no conversation: a fresh session at once, the reason logged in the record', async () => {
    const h = iterationHarness([{ kind: 'noConversation', message: 'No conversation found with session ID: s-1' }, answer('ok', 'fresh-1')], { retry: POLICY });
    h.actor.start();
    const record = await h.done;
    expect(h.calls.map((c) => `${c.mode} ${c.sessionId}`)).toEqual(['resume s-1', 'create null']);
    expect(record.sessionId).toBe('new-session'); // the id the agent picked for the fresh session
    expect(record.sessionNotes).toEqual([
      "session s-1 was not found (No conversation found with session ID: s-1; the CLI keeps sessions per working directory): continuing in a new session; the prompt carries the task's history",
    ]);
    expect(record.states).toEqual(['building', 'prompting', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting']);
  });

  it('session switches are bounded: a CLI that keeps saying "in use" and "not found" cannot loop forever', async () => {
    const h = iterationHarness([busy, { kind: 'noConversation', message: 'No conversation found with session ID: s-1' }], { sessionStarted: false, retry: POLICY });
    h.actor.start();
    const record = await h.done;
    // create → "in use" → resume → "not found" → fresh create → "not found" → fresh create → "not found": stop.
    expect(h.calls.map((c) => c.mode)).toEqual(['create', 'resume', 'create', 'create']);
    // The last "not found" is handed to the validator, which fails the answer instead of switching again.
    expect(record.agent?.outcome.kind).toBe('noConversation');
    expect(record.sessionNotes).toHaveLength(3);
  });

  it('fatal outcomes (auth, bad flag, missing binary) fail fast with the CLI message: one call, no wait', async () => {
    const h = iterationHarness([{ kind: 'fatal', message: 'the agent cannot reach the API: Failed to authenticate. API Error: 401 invalid x-api-key' }], { retry: POLICY });
    h.actor.start();
    const record = await h.done;
    expect(h.calls).toHaveLength(1);
    expect(record.failure).toBe('agent call failed: the agent cannot reach the API: Failed to authenticate. API Error: 401 invalid x-api-key');
    expect(record.states).toEqual(['building', 'prompting', 'awaitingAgent', 'persisting']);
  });

  it('timeout and malformed output go to the validator (not a crash), the raw text kept in the record', async () => {
    for (const outcome of [
      { kind: 'timeout', message: 'the agent did not finish within 900.0s and was killed' },
      { kind: 'malformed', message: 'no JSON result object in the output', raw: '<html>502</html>' },
    ] as AgentOutcome[]) {
      const h = iterationHarness([outcome], { retry: POLICY });
      h.actor.start();
      const record = await h.done;
      expect(record.states).toContain('validating');
      expect(record.agent?.outcome).toEqual(outcome);
      expect(h.calls).toHaveLength(1);
    }
  });
});
