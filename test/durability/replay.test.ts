import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { answerRun, resumeRun, runTask } from '../../src/index.js';
import { replayRun, type ReplayStep } from '../../src/replay/replay.js';
import { RunStore } from '../../src/store/run-store.js';
import { CLI } from '../helpers/cli.js';
import { BUSY, deterministicAgent, tempDir } from './helpers.js';

const config = configSchema.parse({ agent: { local: { retry_initial_delay: 0.02 } }, task: { max_iterations: 8 } });

/**
 * A run with most of what can happen: a busy session and its backoff, a kill and a resume, a human's answer.
 * The agent answers by iteration, so whatever process drives it, the answers are the same.
 */
async function eventfulRun() {
  const store = tempDir();
  const agent = () =>
    new ScriptedAgent((request) => {
      if (request.index === 2 && request.attempt === 1) return BUSY;
      if (request.index >= 3 && request.index <= 5) return 'Which database should I migrate?';
      if (request.index === 7) return 'Migrated the users table and ran its tests.\nSTATUS: DONE';
      return `Iteration ${request.index}: wrote part ${request.index}.\nSTATUS: CONTINUE`;
    });
  const controller = new AbortController();
  const first = await runTask({
    task: 'Migrate the database',
    workdir: store,
    storeDir: store,
    agent: agent(),
    config,
    signal: controller.signal,
    onEvent: (event) => event.type === 'state' && event.index === 2 && event.state === 'retryingSessionLock' && queueMicrotask(() => controller.abort()),
  });
  expect(first.status).toBe('interrupted');
  const waiting = await resumeRun(first.runId, { storeDir: store, agent: agent() });
  expect(waiting.status).toBe('escalated');
  const done = await answerRun(first.runId, 'Use the users table', { storeDir: store, agent: agent() });
  expect(done.status).toBe('done');
  return { store, runId: first.runId, result: done };
}

describe('replay', () => {
  it('drives the machines again from the journal alone and finds every step as recorded, across resumes', async () => {
    const { store, runId, result } = await eventfulRun();
    const steps: ReplayStep[] = [];
    const inspected: InspectionEvent[] = [];
    const replay = await replayRun(runId, { storeDir: store, onStep: (step) => void steps.push(step), inspect: (event) => inspected.push(event) });
    expect(replay.divergence).toBeNull();
    expect(replay.verified).toBe(true);
    expect(replay.segments).toBe(3);
    expect(replay.iterations).toBe(result.iterations.length);
    const journal = RunStore.open(store).openRun(runId).readJournal();
    expect(replay.steps).toBe(journal.length);
    expect(steps.map((s) => s.seq)).toEqual(journal.map((e) => e.seq));
    expect(steps.map((s) => [s.actor, s.event.type, s.iteration?.state ?? null])).toEqual(journal.map((e) => [e.actor, e.event.type, e.iteration?.state ?? null]));
    // The replayed snapshots are the recorded ones, times included: the simulated clock is set to each line's
    // time, which is the time the transition's actions read.
    steps.forEach((step, i) => expect(step.snapshot).toEqual(journal[i]!.snapshot));
    // The resume and the human's answer were replayed as the events they were.
    expect(steps.map((s) => s.event.type)).toEqual(expect.arrayContaining(['RESUMED', 'HUMAN_ANSWER', 'xstate.after.backoffDelay.iteration.retryingSessionLock']));
    // The inspector hook sees the replayed actors: the task and each iteration.
    const actors = new Set(inspected.filter((e) => e.type === '@xstate.actor').map((e) => (e.actorRef as { id?: string }).id));
    expect(actors.size).toBeGreaterThanOrEqual(result.iterations.length + 1);
  });

  it('stops at --until with the snapshot of that moment', async () => {
    const { store, runId } = await eventfulRun();
    const replay = await replayRun(runId, { storeDir: store, until: '2.retryingSessionLock' });
    expect(replay.verified).toBe(true);
    expect(replay.stoppedAt).toMatchObject({ iteration: 2, state: 'retryingSessionLock' });
    const snapshot = replay.stoppedAt!.snapshot as { value: string; children: { iteration: { snapshot: { value: string; context: { index: number; retries: number; retryDueAt: number } } } } };
    expect(snapshot.value).toBe('running');
    expect(snapshot.children.iteration.snapshot).toMatchObject({ value: 'retryingSessionLock', context: { index: 2, retries: 1 } });
    const human = await replayRun(runId, { storeDir: store, until: 'task.awaitingHuman' });
    expect((human.stoppedAt!.snapshot as { context: { question: string } }).context.question).toBeTruthy();
  });

  it('reports the first step where the machines disagree with the record', async () => {
    const { store, runId } = await eventfulRun();
    // Replaying with a smaller iteration budget than the run had: the task machine must stop earlier.
    const runJson = join(store, 'runs', runId, 'run.json');
    const file = JSON.parse(readFileSync(runJson, 'utf8'));
    file.input.budgets.maxIterations = 1;
    writeFileSync(runJson, JSON.stringify(file));
    const replay = await replayRun(runId, { storeDir: store });
    expect(replay.verified).toBe(false);
    const journal = RunStore.open(store).openRun(runId).readJournal();
    const absorbed1 = journal.find((e) => e.actor === 'task' && e.event.type === 'xstate.done.actor.iteration' && e.snapshot && (e.snapshot as { context: { iterations: number } }).context.iterations === 1)!;
    expect(replay.divergence).toMatchObject({ what: 'task state' });
    expect(replay.divergence!.expected).toContain('task "running"');
    expect(replay.divergence!.actual).toContain('task "maxIterations"');
    expect(replay.divergence!.seq).toBeGreaterThanOrEqual(absorbed1.seq - 1);
    expect(replay.divergence!.seq).toBeLessThanOrEqual(absorbed1.seq);
    expect(replay.steps).toBeLessThan(journal.length);
  });

  it('the CLI: exit 0 and a verdict when it matches, 1 with the difference when not, 2 for an unknown run', async () => {
    const { store, runId } = await eventfulRun();
    const ok = await execa('node', [CLI, 'replay', runId, '--db', store, '--json'], { reject: false });
    expect(ok.exitCode).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ runId, verified: true, segments: 3, divergence: null });
    const until = await execa('node', [CLI, 'replay', runId, '--db', store, '--until', '3.deciding'], { reject: false });
    expect(until.exitCode).toBe(0);
    expect(JSON.parse(until.stdout).children.iteration.snapshot.value).toBe('deciding');
    const badUntil = await execa('node', [CLI, 'replay', runId, '--db', store, '--until', 'three'], { reject: false });
    expect(badUntil.exitCode).toBe(2);
    expect(badUntil.stderr).toMatch(/^obra: --until: "three" is not <iteration>\.<state>/);
    const runJson = join(store, 'runs', runId, 'run.json');
    const file = JSON.parse(readFileSync(runJson, 'utf8'));
    file.input.budgets.maxIterations = 1;
    writeFileSync(runJson, JSON.stringify(file));
    const diverged = await execa('node', [CLI, 'replay', runId, '--db', store], { reject: false });
    expect(diverged.exitCode).toBe(1);
    expect(diverged.stderr).toMatch(/diverges after \d+ matching steps, at journal line seq \d+: task state differs\n  recorded: .*\n  replayed: .*maxIterations/);
    const unknown = await execa('node', [CLI, 'replay', 'nope', '--db', store], { reject: false });
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/no run "nope"/);
  });

  describe('an iteration record in the journal that the replayed iteration does not produce: `obra replay` exits 1 naming the field', () => {
    // deterministicAgent: iteration 2 finds the session busy once (a backoff of 20 ms), iteration 3 is done.
    const tampered: [field: string, index: number, value: unknown][] = [
      ['decision', 1, 'retry'],
      ['sessionId', 2, '00000000-0000-4000-8000-000000000000'],
      ['retryDelaysMs', 2, [40]],
    ];
    it.each(tampered)('%s of iteration %i', async (field, index, value) => {
      const store = tempDir();
      const result = await runTask({ task: 'Build the parser', workdir: store, storeDir: store, agent: deterministicAgent(), config });
      expect(result.iterations.map((i) => i.retryDelaysMs)).toEqual([[], [20], []]);
      const journal = join(store, 'runs', result.runId, 'journal.jsonl');
      let recorded: unknown;
      const lines = readFileSync(journal, 'utf8').split('\n').map((line) => {
        if (!line.includes('"xstate.done.actor.iteration"')) return line;
        const entry = JSON.parse(line) as { event: { output: Record<string, unknown> } };
        if (entry.event.output.index !== index) return line;
        recorded = entry.event.output[field];
        entry.event.output[field] = value;
        return JSON.stringify(entry);
      });
      expect(recorded).toBeDefined();
      writeFileSync(journal, lines.join('\n'));
      const replay = await execa('node', [CLI, 'replay', result.runId, '--db', store], { reject: false });
      expect(replay.exitCode).toBe(1);
      expect(replay.stderr).toMatch(
        new RegExp(`diverges after \\d+ matching steps, at journal line seq \\d+: iteration ${index} ${field} differs\n  recorded: ${escape(JSON.stringify(value))}\n  replayed: ${escape(JSON.stringify(recorded))}$`),
      );
    });
  });
});

describe('replay checks the stored iteration records against the journal', () => {
  /** iterations.jsonl of the run, rewritten by `change` (a record lost, tampered with or written twice). */
  function tamper(store: string, runId: string, change: (records: Record<string, unknown>[]) => Record<string, unknown>[]) {
    const path = join(store, 'runs', runId, 'iterations.jsonl');
    const records = readFileSync(path, 'utf8').split('\n').filter((line) => line.trim() && !/^\0+$/.test(line)).map((line) => JSON.parse(line.replace(/\0+$/, '')) as Record<string, unknown>);
    writeFileSync(path, `${change(records).map((r) => JSON.stringify(r)).join('\n')}\n`);
  }

  it('fails, naming the iteration and the field, on a record that does not match; exit 1 from the CLI', async () => {
    const { store, runId } = await eventfulRun();
    expect((await replayRun(runId, { storeDir: store })).verified).toBe(true);
    const cases: [string, (records: Record<string, unknown>[]) => Record<string, unknown>[], Partial<{ what: string; expected: string; actual: string }>][] = [
      ['decision', (rs) => rs.map((r) => (r.index === 2 ? { ...r, decision: 'done' } : r)), { what: 'the record of iteration 2: decision', expected: '"proceed"', actual: '"done"' }],
      ['session', (rs) => rs.map((r) => (r.index === 1 ? { ...r, sessionId: 'another-session' } : r)), { what: 'the record of iteration 1: sessionId', actual: '"another-session"' }],
      ['retry delays', (rs) => rs.map((r) => (r.index === 2 ? { ...r, retryDelaysMs: [] } : r)), { what: 'the record of iteration 2: retryDelaysMs', actual: '[]' }],
      ['twice', (rs) => [...rs, rs[0]!], { what: 'the record of iteration 1', expected: 'one record', actual: '2 records' }],
      ['lost', (rs) => rs.filter((r) => r.index !== 3), { what: 'the record of iteration 3', expected: 'a record (the journal finished that iteration)', actual: 'none' }],
      ['unbacked', (rs) => [...rs, { ...rs[0]!, index: 99 }], { what: 'the record of iteration 99', expected: 'no record (the journal never finished that iteration)' }],
    ];
    const path = join(store, 'runs', runId, 'iterations.jsonl');
    const original = readFileSync(path);
    for (const [name, change, expected] of cases) {
      writeFileSync(path, original);
      tamper(store, runId, change);
      const replay = await replayRun(runId, { storeDir: store });
      expect(replay.verified, name).toBe(false);
      expect(replay.divergence, name).toMatchObject({ ...expected, sides: { expected: 'journal', actual: 'stored record' } });
    }
    // The last case through the CLI: one verdict naming it, exit 1.
    const cli = await execa('node', [CLI, 'replay', runId, '--db', store], { reject: false });
    expect(cli.exitCode).toBe(1);
    expect(cli.stderr).toMatch(
      new RegExp(`^Replay of run ${runId}: \\d+ steps match, but the record of iteration 99 does not match the journal\\n  journal: no record \\(the journal never finished that iteration\\)\\n  stored record: a record \\(decision "proceed"\\)$`),
    );
    writeFileSync(path, original);
    expect((await execa('node', [CLI, 'replay', runId, '--db', store], { reject: false })).exitCode).toBe(0);
  });
});

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
