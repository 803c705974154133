import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/engine/run-result.js';
import { RunStore } from '../../src/store/run-store.js';
import { CLI, FAKE_CLAUDE } from '../helpers/cli.js';

/**
 * The fault test: the real CLI process is killed with SIGKILL as it enters each of the eight iteration states
 * and the human wait, then resumed (`obra resume`, `obra answer`); the final result must be the one an
 * uninterrupted run gives — same statuses, iterations, decisions and state sequences, no iteration lost or
 * recorded twice.
 *
 * The scripted fake Claude answers: iteration 1 works, iteration 2 first finds the session busy (backoff), then
 * works, iterations 3 and 4 only ask a question back (stuck → the run waits for a human), and after the
 * human's answer iteration 5 finishes the task.
 *
 * How the kill lands in a state: a backoff wait and an agent call last long enough to be caught from outside
 * (watching the journal, and the fake's call counter); the pure computing states last microseconds, so the run
 * is started by test/durability/stalling-run.ts, whose journal (wrapped through the engine's `journal` option)
 * freezes the process right after the transition into the state is on disk, and it is killed there.
 */

const TASK = 'Migrate the database to the new schema';
const ANSWER = 'Use the users table';
const REPLIES = [
  'Implemented part 1: the schema diff, with tests.\nSTATUS: CONTINUE',
  { busy: true },
  'Implemented part 2: the migration script, with tests.\nSTATUS: CONTINUE',
  'Which database should I migrate?',
  'Which database should I migrate?',
  'Migrated the users table as asked and ran the migration tests.\nSTATUS: DONE',
];

interface Sandbox {
  dir: string;
  env: Record<string, string>;
  journal: () => string | null;
}

function sandbox(replies: unknown[], extraEnv: Record<string, string> = {}): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'obra-fault-'));
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: dir,
    NO_COLOR: '1',
    CLAUDE_CONFIG_DIR: join(dir, '.claude'),
    FAKE_CLAUDE_STATE_DIR: join(dir, '.fake'),
    FAKE_CLAUDE_REPLIES: JSON.stringify(replies),
    FAKE_CLAUDE_LATENCY_MS: '20',
    OBRA_AGENT__LOCAL__RETRY_INITIAL_DELAY: '0.3',
    OBRA_DECISION__STUCK_AFTER: '2',
    ...extraEnv,
  };
  const journal = () => {
    const runs = join(dir, '.obra', 'runs');
    const [runId] = existsSync(runs) ? readdirSync(runs) : [];
    return runId ? join(runs, runId, 'journal.jsonl') : null;
  };
  return { dir, env, journal };
}

function obra(box: Sandbox, args: string[], env: Record<string, string> = {}) {
  return execa('node', [CLI, ...args], { cwd: box.dir, env: { ...box.env, ...env }, extendEnv: false, reject: false, timeout: 60_000 });
}

const start = (box: Sandbox, env: Record<string, string> = {}) => obra(box, ['run', '--task', TASK, '--agent-bin', FAKE_CLAUDE, '--json'], env);

/** The same run, freezing right after entering `spec` (`2.scoring`, `task.awaitingHuman`) is on disk. */
const STALLING_RUN = join(import.meta.dirname, 'stalling-run.ts');
/** tsx, found from here (the run's working directory is a scratch folder). */
const TSX = import.meta.resolve('tsx');
const stalling = (box: Sandbox, spec: string) =>
  execa('node', ['--import', TSX, STALLING_RUN, spec, TASK, FAKE_CLAUDE], { cwd: box.dir, env: box.env, extendEnv: false, reject: false, timeout: 60_000 });

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function journalHas(box: Sandbox, pattern: string): boolean {
  const path = box.journal();
  return path !== null && existsSync(path) && readFileSync(path, 'utf8').includes(pattern);
}

const runIdOf = (box: Sandbox) => RunStore.open(join(box.dir, '.obra'), { create: false }).listRunIds()[0]!;

/** Drives a killed run to its end the way a person would: resume it, and answer it when it asks. */
async function finish(box: Sandbox, checks: { listing?: boolean } = {}): Promise<RunResult> {
  const runId = runIdOf(box);
  if (checks.listing) {
    const runs = JSON.parse((await obra(box, ['runs', '--json'])).stdout) as { runId: string; status: string }[];
    expect(runs).toEqual([expect.objectContaining({ runId, status: 'interrupted' })]);
  }
  const journal = RunStore.open(join(box.dir, '.obra'), { create: false }).openRun(runId).readJournal();
  if (journal.at(-1)!.task !== 'awaitingHuman') {
    const resumed = await obra(box, ['resume', runId, '--json']);
    expect(resumed.exitCode, resumed.stderr).toBe(3);
    expect((JSON.parse(resumed.stdout) as RunResult).status).toBe('escalated');
  }
  const answered = await obra(box, ['answer', runId, ANSWER, '--json']);
  expect(answered.exitCode, answered.stderr).toBe(0);
  const result = JSON.parse(answered.stdout) as RunResult;
  if (checks.listing) {
    // `obra show --json` prints the very object `obra answer --json` (and `obra run --json`) printed.
    expect(JSON.parse((await obra(box, ['show', runId, '--json'])).stdout)).toEqual(result);
  }
  return result;
}

function comparable(result: RunResult) {
  return {
    status: result.status,
    iterations: result.iterations.map((i) => ({ index: i.index, states: i.states, decision: i.decision, decisionRule: i.decisionRule, attempts: i.attempts, retryDelaysMs: i.retryDelaysMs })),
    sessions: new Set(result.iterations.map((i) => i.sessionId)).size,
  };
}

function recordedIndexes(box: Sandbox): number[] {
  const runId = runIdOf(box);
  return readFileSync(join(box.dir, '.obra', 'runs', runId, 'iterations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).index);
}

let reference: Promise<RunResult> | null = null;

/** The uninterrupted run: `obra run` until it asks, `obra answer`, done. */
function uninterrupted(): Promise<RunResult> {
  reference ??= (async () => {
    const box = sandbox(REPLIES);
    const ran = await start(box);
    expect(ran.exitCode, ran.stderr).toBe(3);
    const escalated = JSON.parse(ran.stdout) as RunResult;
    expect(escalated.status).toBe('escalated');
    expect(escalated.question).toBeTruthy();
    expect(JSON.parse((await obra(box, ['show', escalated.runId, '--json'])).stdout)).toEqual(escalated);
    const answered = await obra(box, ['answer', escalated.runId, ANSWER, '--json']);
    expect(answered.exitCode, answered.stderr).toBe(0);
    const done = JSON.parse(answered.stdout) as RunResult;
    expect(comparable(done)).toMatchObject({
      status: 'done',
      iterations: [
        { decision: 'proceed', states: ['building', 'prompting', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting'] },
        { decision: 'proceed', states: ['building', 'prompting', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting'] },
        { decision: 'retry' },
        { decision: 'escalate' },
        { decision: 'done' },
      ],
    });
    expect(recordedIndexes(box)).toEqual([1, 2, 3, 4, 5]);
    const replay = await obra(box, ['replay', escalated.runId, '--json']);
    expect(replay.exitCode, `${replay.stderr}${replay.stdout}`).toBe(0);
    return done;
  })();
  return reference;
}

describe('SIGKILL in every state, then resume: the same result as an uninterrupted run', { timeout: 60_000 }, () => {
  const computing = ['building', 'prompting', 'validating', 'scoring', 'deciding', 'persisting'];

  it.concurrent.each(computing)('killed on entering %s', async (state) => {
    const box = sandbox(REPLIES);
    const run = stalling(box, `2.${state}`);
    let stderr = '';
    run.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await until(() => stderr.includes(`stalled in 2.${state}`), `the engine to enter ${state}`);
    run.kill('SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    const last = RunStore.open(join(box.dir, '.obra'), { create: false }).openRun(runIdOf(box)).readJournal().at(-1)!;
    expect(last.iteration).toEqual({ index: 2, state });
    const result = await finish(box);
    expect(comparable(result)).toEqual(comparable(await uninterrupted()));
    expect(recordedIndexes(box)).toEqual([1, 2, 3, 4, 5]);
  });

  it.concurrent('killed in awaitingAgent while the agent works: the call is made again on the same session', async () => {
    // The killed Obra's agent process runs on and uses up its answer: the re-issued call (at-least-once) gets
    // the next one, so the script repeats iteration 1's answer once.
    const box = sandbox([REPLIES[0], ...REPLIES], { FAKE_CLAUDE_LATENCY_MS: '400' });
    const log = join(box.dir, 'calls.jsonl');
    box.env.FAKE_CLAUDE_LOG = log;
    const run = start(box);
    const counter = join(box.dir, '.fake', 'fake-claude-calls');
    await until(() => existsSync(counter) && readFileSync(counter, 'utf8') === '1', 'the first agent call to reach the API');
    expect(journalHas(box, '"iteration":{"index":1,"state":"awaitingAgent"}')).toBe(true);
    run.kill('SIGKILL');
    await run;
    const result = await finish(box);
    expect(comparable(result)).toEqual(comparable(await uninterrupted()));
    expect(recordedIndexes(box)).toEqual([1, 2, 3, 4, 5]);
    const calls = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { argv: string[]; session: string });
    // The lost call created the session (its process may die with its pipe before it logs); the re-issued call
    // resumed that session instead of starting a new one, as did every later call.
    const creating = calls.filter((c) => c.argv.includes('--session-id'));
    expect(creating.length).toBeLessThanOrEqual(1);
    expect(calls.filter((c) => c.argv.includes('--resume'))).toHaveLength(REPLIES.length);
    expect(calls.every((c) => c.session === result.sessionId)).toBe(true);
    const resume = RunStore.open(join(box.dir, '.obra'), { create: false }).openRun(runIdOf(box)).readJournal({ markers: true }).find((e) => e.event.type === 'obra.resume')!;
    expect(resume.event.restarted).toEqual(['callAgent']);
  });

  it.concurrent('killed in retryingSessionLock: the resumed run waits only what was left of the backoff', async () => {
    const box = sandbox(REPLIES, { OBRA_AGENT__LOCAL__RETRY_INITIAL_DELAY: '1.5' });
    const run = start(box);
    await until(() => journalHas(box, '"iteration":{"index":2,"state":"retryingSessionLock"}'), 'the backoff wait');
    run.kill('SIGKILL');
    await run;
    const result = await finish(box, { listing: true });
    const expected = comparable(await uninterrupted());
    expected.iterations[1]!.retryDelaysMs = [1500];
    expect(comparable(result)).toEqual(expected);
    const journal = RunStore.open(join(box.dir, '.obra'), { create: false }).openRun(runIdOf(box)).readJournal({ markers: true });
    const waiting = journal.find((e) => e.iteration?.state === 'retryingSessionLock')!;
    const dueAt = (waiting.snapshot as { children: { iteration: { snapshot: { context: { retryDueAt: number } } } } }).children.iteration.snapshot.context.retryDueAt;
    const restoredAt = journal.find((e) => e.event.type === 'obra.resume')!.at;
    const retried = journal.find((e) => e.event.type.startsWith('xstate.after.'))!;
    // Due at the stored time (or at once, when the resume came later than that): never a whole wait again.
    // No wall-clock bound: the retry came nearer to what was left of the wait than to a whole wait (1.5 s)
    // started again at the restore.
    const leftOver = Math.max(dueAt, restoredAt);
    const wholeAgain = restoredAt + 1500;
    expect(retried.at).toBeGreaterThanOrEqual(Math.min(dueAt, restoredAt));
    expect(retried.at - leftOver).toBeLessThan(wholeAgain - retried.at);
  });

  it.concurrent('killed on entering awaitingHuman: `obra answer` takes the interrupted run on', async () => {
    const box = sandbox(REPLIES);
    const run = stalling(box, 'task.awaitingHuman');
    let stderr = '';
    run.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await until(() => stderr.includes('stalled in task.awaitingHuman'), 'the human wait');
    run.kill('SIGKILL');
    await run;
    const result = await finish(box, { listing: true });
    expect(comparable(result)).toEqual(comparable(await uninterrupted()));
    expect(recordedIndexes(box)).toEqual([1, 2, 3, 4, 5]);
  });
});
