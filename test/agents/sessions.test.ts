import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SimulatedClock } from 'xstate';
import { describe, expect, it } from 'vitest';
import type { Agent, AgentCallRequest } from '../../src/agents/agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import { ProgressReporter } from '../../src/cli/progress.js';
import { loadConfig, validateConfig } from '../../src/config/load.js';
import { UserError } from '../../src/core/errors.js';
import type { AgentCallRecord, IterationRecord } from '../../src/core/types.js';
import { resumeRun, runTask, type EngineEvent } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';
import { config, fakeWorld } from './fake-env.js';

const CONTINUE = (what: string) => `${what}: wrote the code and checked it by hand.\nNext: the following step.\nSTATUS: CONTINUE`;
const DONE = 'Reviewed everything; the function and its documentation match and the task is complete.\nSTATUS: DONE';
const THREE = [CONTINUE('Created greet.js with greet(name)'), CONTINUE('Documented greet(name) in README.md'), DONE];

/** All iteration records of a run, as persisted. */
function iterationsOf(storeDir: string, runId: string): IterationRecord[] {
  const store = RunStore.open(storeDir, { create: false });
  const handle = store.openRun(runId);
  try {
    return handle.readIterations();
  } finally {
    handle.close();
  }
}

describe('session strategies, end to end with the fake CLI', () => {
  it('resume (default): --session-id once, then --resume of the same session; one conversation', async () => {
    const world = fakeWorld('sessions');
    const result = await runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir: join(world.root, 'store'), config: config(), agent: world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify(THREE) }) });
    expect(result.status).toBe('done');
    const u = result.sessionId!;
    expect(world.sessionFlags()).toEqual([`create ${u}`, `resume ${u}`, `resume ${u}`]);
    expect(world.transcript(u)).toHaveLength(6); // three prompts, three answers, in one transcript
    expect(result.iterations.map((i) => i.sessionId)).toEqual([u, u, u]);
  });

  it('fresh: a new session every iteration (the prompt carries the history)', async () => {
    const world = fakeWorld('sessions');
    const result = await runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir: join(world.root, 'store'), config: config({ agent: { local: { session_strategy: 'fresh' } } }), agent: world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify(THREE) }) });
    expect(result.status).toBe('done');
    const ids = result.iterations.map((i) => i.sessionId);
    expect(new Set(ids).size).toBe(3);
    expect(world.sessionFlags()).toEqual(ids.map((id) => `create ${id}`));
    for (const id of ids) expect(world.transcript(id)).toHaveLength(2);
    // The third prompt summarised the first two iterations.
    const third = JSON.parse(world.transcript(ids[2]!)[0]!).message.content as string;
    expect(third).toContain('Iteration 1');
    expect(third).toContain('Iteration 2');
  });

  it('fork: each iteration forks the previous one (--resume P --fork-session); every parent stays as it was', async () => {
    const world = fakeWorld('sessions');
    const result = await runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir: join(world.root, 'store'), config: config({ agent: { local: { session_strategy: 'fork' } } }), agent: world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify(THREE) }) });
    expect(result.status).toBe('done');
    const [a, b, c] = result.iterations.map((i) => i.sessionId);
    expect(new Set([a, b, c]).size).toBe(3);
    expect(world.sessionFlags()).toEqual([`create ${a}`, `fork ${a}`, `fork ${b}`]);
    expect([a, b, c].map((id) => world.transcript(id!).length)).toEqual([2, 4, 6]);
  });

  it('a restarted run resumes the same conversation (killed between iterations and in the middle of a first call)', async () => {
    const world = fakeWorld('sessions');
    const storeDir = join(world.root, 'store');
    // Call 1 never answers: the run is interrupted while it is in flight (after the CLI wrote the transcript).
    const agent = world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify([{ hang: true }, ...THREE]) }, { killGraceMs: 200 });
    const controller = new AbortController();
    const first = runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir, config: config(), agent, signal: controller.signal });
    const deadline = Date.now() + 10_000;
    while (!world.calls().some((c) => c.outcome === 'hang-child') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    controller.abort();
    const interrupted = await first;
    expect(interrupted.status).toBe('interrupted');
    const u = interrupted.sessionId!;

    // Restart 1: the in-flight first call is issued again — as --resume, since the transcript exists.
    const controller2 = new AbortController();
    const second = await resumeRun(interrupted.runId, {
      storeDir,
      agent,
      signal: controller2.signal,
      onEvent: (e: EngineEvent) => {
        if (e.type === 'iteration-done' && e.record.index === 1) controller2.abort();
      },
    });
    expect(second.status).toBe('interrupted');
    // Restart 2: between iterations.
    const done = await resumeRun(interrupted.runId, { storeDir, agent });
    expect(done.status).toBe('done');
    expect(done.sessionId).toBe(u);
    expect(world.sessionFlags()).toEqual([`create ${u}`, `resume ${u}`, `resume ${u}`, `resume ${u}`]);
    expect(iterationsOf(storeDir, interrupted.runId).map((r) => `${r.index} ${r.sessionMode} ${r.sessionId}`)).toEqual([`1 resume ${u}`, `2 resume ${u}`, `3 resume ${u}`]);
  });
});

/** Records when the session lock was taken, refused and released (the release is what ends a waiter's wait). */
class RecordingLocks extends SessionLocks {
  readonly log: { type: 'acquired' | 'refused' | 'released'; at: number; session: string }[] = [];
  override tryAcquire(sessionId: string) {
    const result = super.tryAcquire(sessionId);
    const at = Date.now();
    if (!result.ok) {
      this.log.push({ type: 'refused', at, session: sessionId });
      return result;
    }
    this.log.push({ type: 'acquired', at, session: sessionId });
    return {
      ...result,
      release: () => {
        this.log.push({ type: 'released', at: Date.now(), session: sessionId });
        result.release();
      },
    };
  }
}

describe('the engine-side session lock', () => {
  it('two tasks on one session in one process: never two calls in flight; the waiter moves on at the release, not at its backoff step', async () => {
    const world = fakeWorld('lock');
    const locks = new RecordingLocks(join(world.root, 'locks2'));
    const u = randomUUID();
    const agent = world.agent({ FAKE_CLAUDE_LATENCY_MS: '400', FAKE_CLAUDE_REPLIES: JSON.stringify([CONTINUE('Step'), CONTINUE('Step'), CONTINUE('Step'), CONTINUE('Step')]) }, { locks });
    const cfg = config({ agent: { local: { session_id: u, max_retries: 1, retry_initial_delay: 5 } }, task: { max_iterations: 2 } });
    const eventsA: EngineEvent[] = [];
    const eventsB: EngineEvent[] = [];
    const [a, b] = await Promise.all([
      runTask({ task: 'Task A', workdir: world.workdir, storeDir: join(world.root, 'store'), config: cfg, agent, onEvent: (e) => eventsA.push(e) }),
      runTask({ task: 'Task B', workdir: world.workdir, storeDir: join(world.root, 'store'), config: cfg, agent, onEvent: (e) => eventsB.push(e) }),
    ]);
    expect([a.status, b.status]).toEqual(['max_iterations', 'max_iterations']);

    // The CLI ran four times, one after another: no overlap, no "already in use" from the CLI.
    const runs = world.calls().filter((c) => c.outcome === 'answer');
    expect(runs).toHaveLength(4);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.startedAt).toBeGreaterThanOrEqual(runs[i - 1]!.at);
    expect(world.calls().filter((c) => c.outcome === 'session-in-use')).toEqual([]);

    // Every refusal was followed by a release and an acquisition after it.
    const refusals = locks.log.filter((e) => e.type === 'refused');
    expect(refusals.length).toBeGreaterThan(0);
    for (const refusal of refusals) {
      const release = locks.log.find((e) => e.type === 'released' && e.at >= refusal.at)!;
      expect(locks.log.find((e) => e.type === 'acquired' && e.at >= release.at)).toBeDefined();
    }
    // The waiting task itself moved on before its 5 s backoff step was due: the release event ended the wait,
    // not the timer. (Compared with the engine's own due time, not a wall-clock bound.)
    for (const events of [eventsA, eventsB]) {
      events.forEach((event, i) => {
        if (event.type !== 'retry') return;
        expect(event).toMatchObject({ kind: 'sessionBusy', holder: 'another task in this process', delayMs: 5000 });
        const next = events.slice(i).find((e) => e.type === 'state' && e.actor === 'iteration' && e.state === 'awaitingAgent') as Extract<EngineEvent, { type: 'state' }>;
        expect(next.at).toBeLessThan(event.dueAt);
      });
    }
    const waits = [...a.iterations, ...b.iterations].flatMap((i) => i.retryDelaysMs);
    expect(waits.length).toBe(refusals.length);
    expect(a.iterations.concat(b.iterations).every((i) => i.sessionId === u)).toBe(true);
  });

  it('a session held by another Obra process (its lock file) is waited for, and resumed once released', async () => {
    const world = fakeWorld('lock');
    const u = randomUUID();
    const agent = world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify([DONE]) });
    // The other process: a lock file with a live pid (this test's parent), removed after 300 ms.
    const lockFile = join(world.locks.dir, `${u}.lock`);
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(world.locks.dir, { recursive: true });
    writeFileSync(lockFile, JSON.stringify({ pid: process.ppid, since: new Date().toISOString() }));
    let removedAt = 0;
    setTimeout(() => {
      removedAt = Date.now();
      rmSync(lockFile);
    }, 300);
    const events: EngineEvent[] = [];
    const result = await runTask({ task: 'Task', workdir: world.workdir, storeDir: join(world.root, 'store'), config: config({ agent: { local: { session_id: u, retry_initial_delay: 5 } } }), agent, onEvent: (e) => events.push(e) });
    expect(result.status).toBe('done');
    const retry = events.find((e) => e.type === 'retry') as Extract<EngineEvent, { type: 'retry' }>;
    expect(retry).toMatchObject({ kind: 'sessionBusy', holder: `Obra process ${process.ppid}`, delayMs: 5000 });
    // The file watch ended the 5 s wait when the file went away: the next call started after the removal and
    // before the wait was due.
    const retryAt = events.findIndex((e) => e.type === 'retry');
    const next = events.slice(retryAt).find((e) => e.type === 'state' && e.actor === 'iteration' && e.state === 'awaitingAgent') as Extract<EngineEvent, { type: 'state' }>;
    expect(next.at - removedAt).toBeGreaterThanOrEqual(0);
    expect(next.at).toBeLessThan(retry.dueAt);
    expect(world.sessionFlags()).toEqual([`create ${u}`]);
  });
});

describe('error classes, end to end with the fake CLI', () => {
  it('no conversation found: a fresh session with the carried context, the reason in the record, then resumed', async () => {
    const world = fakeWorld('errors');
    const storeDir = join(world.root, 'store');
    const agent = world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify(THREE) });
    let first: string | null = null;
    const result = await runTask({
      task: 'Add greet(name)',
      workdir: world.workdir,
      storeDir,
      config: config(),
      agent,
      onEvent: (e) => {
        // The session disappears between iterations 1 and 2 (as if the project had moved).
        if (e.type === 'iteration-done' && e.record.index === 1) {
          first = e.record.sessionId;
          rmSync(join(world.configDir, 'projects', resolve(world.workdir).replace(/[^a-zA-Z0-9]/g, '-'), `${first}.jsonl`));
        }
      },
    });
    expect(result.status).toBe('done');
    const records = iterationsOf(storeDir, result.runId);
    const second = records[1]!;
    const v = second.sessionId;
    expect(v).not.toBe(first);
    expect(world.sessionFlags()).toEqual([`create ${first}`, `resume ${first}`, `create ${v}`, `resume ${v}`]);
    expect(second.sessionNotes).toEqual([
      `session ${first} was not found (No conversation found with session ID: ${first}; the CLI keeps sessions per working directory): continuing in a new session; the prompt carries the task's history`,
    ]);
    expect(JSON.parse(world.transcript(v)[0]!).message.content).toContain('Iteration 1');
    expect(second.attempts).toBe(2);
  });

  it('rate limited (429): the backoff state with the rate-limit policy, then the answer', async () => {
    const world = fakeWorld('errors');
    const events: EngineEvent[] = [];
    const agent = world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify([THREE[0], { api_error_status: 429 }, { api_error_status: 529 }, DONE]) });
    const cfg = config({ agent: { local: { rate_limit_initial_delay: 0.05, rate_limit_backoff: 2, retry_initial_delay: 5 } } });
    const result = await runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir: join(world.root, 'store'), config: cfg, agent, onEvent: (e) => events.push(e) });
    expect(result.status).toBe('done');
    expect(result.iterations[1]!.states).toEqual(['building', 'prompting', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting']);
    expect(result.iterations[1]!.retryDelaysMs).toEqual([50, 100]);
    expect(events.filter((e) => e.type === 'retry').map((e) => (e as { kind: string }).kind)).toEqual(['rateLimited', 'rateLimited']);
  });

  it('auth failure: fail fast with the CLI message, one call, no retry', async () => {
    const world = fakeWorld('errors');
    const result = await runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir: join(world.root, 'store'), config: config(), agent: world.agent({ FAKE_CLAUDE_FAIL: 'auth' }) });
    expect(result.status).toBe('failed');
    expect(result.reason).toBe('agent call failed: the agent cannot reach the API: Failed to authenticate. API Error: 401 invalid x-api-key');
    expect(world.calls()).toHaveLength(1);
  });

  it('timeout: the tree is killed, the iteration is judged (not a crash), the next one resumes the session', async () => {
    const world = fakeWorld('errors');
    const storeDir = join(world.root, 'store');
    const agent = world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify([{ hang: true }, DONE]) }, { timeoutMs: 600, killGraceMs: 200 });
    const result = await runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir, config: config(), agent });
    const records = iterationsOf(storeDir, result.runId);
    expect(records[0]!.agent?.outcome.kind).toBe('timeout');
    expect(records[0]!.validation?.codes).toContain('timeout');
    expect(records[0]!.failure).toBeNull();
    const u = records[0]!.sessionId;
    expect(world.sessionFlags()).toEqual([`create ${u}`, `resume ${u}`]);
    expect(result.status).toBe('done');
  });

  it('malformed output: a validation failure with the raw text kept in the record', async () => {
    const world = fakeWorld('errors');
    const storeDir = join(world.root, 'store');
    const result = await runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir, config: config(), agent: world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify([{ garbage: true }, DONE]) }) });
    const first = iterationsOf(storeDir, result.runId)[0]!;
    expect(first.agent?.outcome).toEqual({ kind: 'malformed', message: 'no JSON result object in the output', raw: expect.stringContaining('this is not JSON <html>502 Bad Gateway</html>') });
    expect(first.validation?.ok).toBe(false);
    expect(first.agent?.stdout).toContain('502 Bad Gateway');
    expect(result.status).toBe('done');
  });

  it('"already in use" when creating the session: switch to --resume at once, no wait', async () => {
    const world = fakeWorld('errors');
    const storeDir = join(world.root, 'store');
    const u = randomUUID();
    // An earlier call of ours created the session (the CLI says so); the fake answers the create with "in use".
    const result = await runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir, config: config({ agent: { local: { session_id: u } } }), agent: world.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify([{ busy: true }, DONE]) }) });
    const first = iterationsOf(storeDir, result.runId)[0]!;
    expect(world.sessionFlags()).toEqual([`create ${u}`, `resume ${u}`]);
    expect(first.retryDelaysMs).toEqual([]);
    expect(first.sessionNotes).toEqual([`session ${u} already exists (an earlier call created it): resuming it with --resume instead of waiting`]);
  });

  it('a session id in config that is not a UUID is a one-line config error, before anything runs', () => {
    expect(() => validateConfig({ agent: { local: { session_id: 'my-session' } } })).toThrow(UserError);
    expect(() => validateConfig({ agent: { local: { session_id: 'my-session' } } })).toThrow(/agent\.local\.session_id.*must be a UUID/);
    expect(() => loadConfig({ env: { OBRA_AGENT__LOCAL__SESSION_ID: 'abc' }, cwd: '/nonexistent-dir' })).toThrow(/must be a UUID/);
  });
});

describe('log lines in the seed\'s shape (SimulatedClock)', () => {
  it('"Session <id> in use, retrying in 2.0s (attempt 1/5)" and "Received response (683 chars) after 3 attempts"', async () => {
    const world = fakeWorld('log');
    const clock = new SimulatedClock();
    const answer683 = 'Implemented the change and checked it. '.repeat(20).slice(0, 670) + '\nSTATUS: DONE';
    expect(answer683).toHaveLength(683);
    const busy = { outcome: { kind: 'sessionBusy' as const, message: 'Error: Session ID x is already in use.' } };
    const agent = new ScriptedAgent([CONTINUE('First'), busy, busy, answer683], { now: () => clock.now() });
    const lines: string[] = [];
    const out = { write: (text: string) => (lines.push(...text.split('\n').filter(Boolean)), true), isTTY: false } as unknown as NodeJS.WritableStream;
    const progress = new ProgressReporter('normal', out, { now: () => clock.now(), tty: false });
    const pending = runTask({ task: 'Add greet(name)', workdir: world.workdir, storeDir: join(world.root, 'store'), config: config(), agent, clock, onEvent: progress.handle });
    let settled = false;
    void pending.then(() => (settled = true));
    // The clock moves while the engine runs (its journal waits for the disk off the event loop, in real time).
    for (let i = 0; i < 20_000 && !settled; i++) {
      await new Promise((r) => setImmediate(r));
      clock.increment(100);
    }
    const result = await pending;
    progress.dispose();
    expect(result.status).toBe('done');
    const u = result.sessionId;
    expect(lines.filter((l) => /WARNING Session|INFO Received/.test(l))).toEqual([
      `INFO Received response (${CONTINUE('First').length} chars) after 1 attempt`,
      `WARNING Session ${u} in use, retrying in 2.0s (attempt 1/5)`,
      `WARNING Session ${u} in use, retrying in 3.0s (attempt 2/5)`,
      'INFO Received response (683 chars) after 3 attempts',
    ]);
    expect(result.iterations[1]!.retryDelaysMs).toEqual([2000, 3000]);
  });
});

/** An agent wrapper that counts calls (kept for symmetry with the real-CLI suite). */
export function counting(inner: Agent): Agent & { calls: AgentCallRecord[] } {
  const calls: AgentCallRecord[] = [];
  return {
    name: inner.name,
    calls,
    whenSessionFree: inner.whenSessionFree?.bind(inner),
    async call(request: AgentCallRequest) {
      const record = await inner.call(request);
      calls.push(record);
      return record;
    },
  };
}
