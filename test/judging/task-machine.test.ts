import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { createTaskMachine, type TaskInput } from '../../machines/task.machine.js';
import type { Decision, IterationRecord } from '../../src/core/types.js';
import { taskTrace } from './helpers.js';

/**
 * The task machine on its own, with a stand-in iteration actor: the routing guards and budget guards without
 * the engine around them. The machine's clock (`now`) is separate from the actor's timer clock here, so the
 * between-iterations time check can be tested without the in-iteration timer firing first.
 */
function record(index: number, decision: Decision, extra: Partial<IterationRecord> = {}): IterationRecord {
  return {
    runId: 'r',
    index,
    states: [],
    attempts: 1,
    retryDelaysMs: [],
    sessionId: 's',
    sessionMode: 'resume',
    prompt: '',
    agent: null,
    validation: { ok: true, reasons: [], codes: [], answer: `answer ${index}`, claimsDone: decision === 'done' },
    quality: 0.8,
    qualityBreakdown: {},
    checks: [],
    confidence: 0.8,
    confidenceExplanation: [],
    decision,
    decisionRule: 'test',
    reason: `decided ${decision}`,
    feedback: decision === 'retry' ? `feedback ${index}` : null,
    costUsd: 0,
    turns: 1,
    startedAt: 0,
    finishedAt: 0,
    failure: null,
    ...extra,
  };
}

const input = (budgets: Partial<TaskInput['budgets']> = {}): TaskInput => ({
  runId: 'r',
  task: { text: 't', workdir: '/tmp', checks: [], requiredMarkers: [] },
  sessionId: 's',
  sessionStrategy: 'resume',
  retry: { maxRetries: 0, initialDelayMs: 1, backoff: 1, maxDelayMs: 1, jitter: 'none', onExhausted: 'fail' },
  budgets: { maxIterations: 10, maxCostUsd: null, maxTurns: null, maxWallMs: null, ...budgets },
  historyWindow: 5,
});

function drive(decisions: Decision[], budgets: Partial<TaskInput['budgets']> = {}, iterationMs = 0) {
  let now = 1_000;
  const seen: { index: number; feedback: string | null }[] = [];
  const machine = createTaskMachine(() => now).provide({
    actors: {
      iteration: fromPromise(async ({ input: i }: { input: { index: number; feedback: string | null } }) => {
        seen.push({ index: i.index, feedback: i.feedback });
        now += iterationMs;
        return record(i.index, decisions[i.index - 1] ?? 'proceed');
      }) as never,
    },
  });
  const trace = taskTrace();
  const actor = createActor(machine, { input: input(budgets), clock: new SimulatedClock() as never, inspect: trace.inspect });
  const done = new Promise<void>((resolve) => actor.subscribe((s) => (s.status === 'done' || s.matches('awaitingHuman') || s.matches('paused')) && resolve()));
  actor.start();
  return { actor, trace, seen, done };
}

describe('task machine routing', () => {
  it('routes each action with its own named guard, feeding retry feedback into the next iteration', async () => {
    const run = drive(['proceed', 'retry', 'clarify', 'done']);
    await run.done;
    expect(run.trace.guards()).toEqual(['decidedProceed', 'decidedRetry', 'decidedClarify', 'decidedDone']);
    expect(run.seen.map((s) => s.feedback)).toEqual([null, null, 'feedback 2', null]);
    expect(run.actor.getSnapshot().context).toMatchObject({ status: 'done', lastRoute: 'decidedDone', iterations: 4 });
  });

  it('escalate waits in awaitingHuman; HUMAN_ANSWER goes straight to the next iteration with the answer as feedback', async () => {
    const run = drive(['escalate', 'done']);
    await run.done;
    expect(run.actor.getSnapshot().value).toBe('awaitingHuman');
    expect(run.actor.getSnapshot().context.question).toBe('decided escalate');
    const finished = new Promise<void>((r) => run.actor.subscribe((s) => s.status === 'done' && r()));
    run.actor.send({ type: 'HUMAN_ANSWER', answer: 'use Postgres' });
    await finished;
    expect(run.seen[1]!.feedback).toBe('A human reviewed the last iteration and answered: use Postgres');
  });

  it('PAUSE during an iteration is honoured after it, CONTINUE goes on', async () => {
    const run = drive(['proceed', 'done']);
    run.actor.send({ type: 'PAUSE' });
    await run.done;
    expect(run.actor.getSnapshot().value).toBe('paused');
    expect(run.actor.getSnapshot().context).toMatchObject({ pauseRequested: false, lastRoute: 'pauseRequested', reason: 'paused by request after iteration 1' });
    const finished = new Promise<void>((r) => run.actor.subscribe((s) => s.status === 'done' && r()));
    run.actor.send({ type: 'CONTINUE' });
    await finished;
    expect(run.actor.getSnapshot().context.status).toBe('done');
  });

  it('between iterations the time budget counts working time only (overTimeBudget)', async () => {
    // Each iteration takes 4 s on the machine's clock; the actor's timers never fire (simulated, not advanced).
    const run = drive(['proceed', 'proceed', 'proceed', 'proceed'], { maxWallMs: 10_000 }, 4_000);
    await new Promise<void>((r) => run.actor.subscribe((s) => s.status === 'done' && r()));
    expect(run.trace.guards()).toEqual(['decidedProceed', 'decidedProceed', 'overTimeBudget']);
    expect(run.actor.getSnapshot().context).toMatchObject({ status: 'budget_exceeded', activeMs: 12_000, reason: 'time budget of 10s reached (12.0s of work in 3 iteration(s))' });
  });

  it('a decision the machine does not know fails the run with the reason instead of looping', async () => {
    const run = drive(['mystery' as Decision]);
    await new Promise<void>((r) => run.actor.subscribe((s) => s.status === 'done' && r()));
    expect(run.actor.getSnapshot().context).toMatchObject({ status: 'failed', reason: 'the iteration decided "mystery", which the task machine cannot route' });
  });
});
