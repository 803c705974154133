import { assign, setup } from 'xstate';
import type { IterationRecord, IterationSummary, RetryPolicy, TaskSpec } from '../src/core/types.js';
import { iterationMachine, type SessionStrategy } from './iteration.machine.js';

/**
 * A whole task: iterations one after another (each an invoked `iteration` machine) until the DecisionEngine
 * says `done`, a human is needed, a budget runs out, or an iteration fails.
 *
 * The context stays small on purpose: it carries the last few iteration summaries and running totals, never
 * the full history (that goes to the store), so a snapshot costs the same at iteration 10 and 1,000.
 */

export interface Budgets {
  maxIterations: number;
  maxCostUsd: number | null;
  maxTurns: number | null;
  maxWallMs: number | null;
}

export interface TaskInput {
  runId: string;
  task: TaskSpec;
  /** The run's Claude Code session, chosen before the first call so a restarted run resumes the same one. */
  sessionId: string | null;
  sessionStrategy: SessionStrategy;
  retry: RetryPolicy;
  budgets: Budgets;
  /** How many past iteration summaries the next iteration sees. */
  historyWindow: number;
}

export interface TaskContext extends TaskInput {
  iterations: number;
  sessionStarted: boolean;
  recent: IterationSummary[];
  feedback: string | null;
  totalCostUsd: number;
  totalTurns: number;
  startedAt: number | null;
  lastDecision: IterationRecord['decision'] | null;
  reason: string | null;
  /** The question put to a human while the task waits in `awaitingHuman`. */
  question: string | null;
  /** Set on entering a final state. */
  status: TaskStatus | null;
}

export type TaskEvent =
  | { type: 'HUMAN_ANSWER'; answer: string }
  | { type: 'CONTINUE' }
  | { type: 'PAUSE' }
  | { type: 'CANCEL'; reason?: string };

export type TaskStatus = 'done' | 'escalated' | 'failed' | 'max_iterations' | 'budget_exceeded' | 'cancelled';

export interface TaskOutput {
  status: TaskStatus;
  reason: string;
  iterations: number;
  totalCostUsd: number;
}

function summarize(record: IterationRecord): IterationSummary {
  const answer = record.validation?.answer ?? '';
  return {
    index: record.index,
    decision: record.decision,
    quality: record.quality ?? 0,
    confidence: record.confidence ?? 0,
    answerExcerpt: answer.length > 400 ? `${answer.slice(0, 400)}…` : answer,
    feedback: record.feedback,
    failingChecks: record.checks.filter((c) => c.exitCode !== 0).map((c) => c.command),
    validationCodes: record.validation?.codes ?? [],
  };
}

const recordOf = (event: unknown) => (event as { output: IterationRecord }).output;

export function createTaskMachine(now: () => number = Date.now) {
  return setup({
    types: {
      input: {} as TaskInput,
      context: {} as TaskContext,
      events: {} as TaskEvent,
      output: {} as TaskOutput,
    },
    actors: {
      iteration: iterationMachine,
    },
    guards: {
      iterationFailed: ({ event }) => recordOf(event).decision === 'fail',
      decidedDone: ({ event }) => recordOf(event).decision === 'done',
      decidedEscalate: ({ event }) => recordOf(event).decision === 'escalate',
      decidedCheckpoint: ({ context }) => context.lastDecision === 'checkpoint',
      reachedMaxIterations: ({ context }) => context.iterations >= context.budgets.maxIterations,
      overCostBudget: ({ context }) => context.budgets.maxCostUsd !== null && context.totalCostUsd >= context.budgets.maxCostUsd,
      overTurnBudget: ({ context }) => context.budgets.maxTurns !== null && context.totalTurns >= context.budgets.maxTurns,
      overTimeBudget: ({ context }) =>
        context.budgets.maxWallMs !== null && context.startedAt !== null && now() - context.startedAt >= context.budgets.maxWallMs,
    },
    actions: {
      stampStart: assign({ startedAt: ({ context }) => context.startedAt ?? now() }),
      absorbIteration: assign(({ context, event }) => {
        const record = recordOf(event);
        return {
          iterations: context.iterations + 1,
          // A call that came back with a session id means that session now exists: resume it next time.
          sessionId: record.sessionId || context.sessionId,
          sessionStarted: context.sessionStarted || (record.agent !== null && record.agent.outcome.kind === 'answer'),
          recent: [...context.recent, summarize(record)].slice(-context.historyWindow),
          feedback: record.feedback,
          totalCostUsd: context.totalCostUsd + record.costUsd,
          totalTurns: context.totalTurns + record.turns,
          lastDecision: record.decision,
          reason: record.reason,
        };
      }),
      askHuman: assign({ question: ({ context }) => context.reason ?? 'The agent needs a decision.' }),
      takeHumanAnswer: assign(({ event }) => ({
        feedback: `A human reviewed the last iteration and answered: ${(event as { answer: string }).answer}`,
        question: null,
      })),
      noteCostBudget: assign({ reason: ({ context }) => `cost budget of $${context.budgets.maxCostUsd} reached ($${context.totalCostUsd.toFixed(4)} spent)` }),
      noteTurnBudget: assign({ reason: ({ context }) => `turn budget of ${context.budgets.maxTurns} reached (${context.totalTurns} turns)` }),
      noteTimeBudget: assign({ reason: ({ context }) => `time budget of ${(context.budgets.maxWallMs ?? 0) / 1000}s reached` }),
      noteMaxIterations: assign({ reason: ({ context }) => `stopped after max_iterations (${context.budgets.maxIterations}) without the task being done` }),
      noteCancel: assign({ reason: ({ event }) => (event as { reason?: string }).reason ?? 'cancelled by the user' }),
    },
  }).createMachine({
    id: 'task',
    context: ({ input }) => ({
      ...input,
      iterations: 0,
      sessionStarted: false,
      recent: [],
      feedback: null,
      totalCostUsd: 0,
      totalTurns: 0,
      startedAt: null,
      lastDecision: null,
      reason: null,
      question: null,
      status: null,
    }),
    initial: 'running',
    on: {
      CANCEL: { target: '.cancelled', actions: 'noteCancel' },
    },
    states: {
      running: {
        entry: 'stampStart',
        invoke: {
          id: 'iteration',
          src: 'iteration',
          input: ({ context }) => ({
            runId: context.runId,
            index: context.iterations + 1,
            task: context.task,
            sessionId: context.sessionStrategy === 'fresh' ? null : context.sessionId,
            sessionStarted: context.sessionStrategy !== 'fresh' && context.sessionStarted,
            sessionStrategy: context.sessionStrategy,
            history: context.recent,
            feedback: context.feedback,
            retry: context.retry,
          }),
          onDone: [
            { guard: 'iterationFailed', target: 'failed', actions: 'absorbIteration' },
            { guard: 'decidedDone', target: 'done', actions: 'absorbIteration' },
            { guard: 'decidedEscalate', target: 'awaitingHuman', actions: ['absorbIteration', 'askHuman'] },
            { target: 'checkingBudgets', actions: 'absorbIteration' },
          ],
        },
      },
      /** Between iterations: every budget is a named guard, checked after the iteration was persisted. */
      checkingBudgets: {
        always: [
          { guard: 'overCostBudget', target: 'budgetExceeded', actions: 'noteCostBudget' },
          { guard: 'overTurnBudget', target: 'budgetExceeded', actions: 'noteTurnBudget' },
          { guard: 'overTimeBudget', target: 'budgetExceeded', actions: 'noteTimeBudget' },
          { guard: 'reachedMaxIterations', target: 'maxIterations', actions: 'noteMaxIterations' },
          { guard: 'decidedCheckpoint', target: 'paused' },
          { target: 'running' },
        ],
      },
      /** Waits for a person (`obra answer <runId> "..."`); survives restarts because it is in the snapshot. */
      awaitingHuman: {
        on: {
          HUMAN_ANSWER: { target: 'checkingBudgets', actions: 'takeHumanAnswer' },
        },
      },
      /** A checkpoint or a user's pause: nothing runs until CONTINUE. */
      paused: {
        on: { CONTINUE: 'running' },
      },
      done: { type: 'final', entry: assign({ status: 'done' as TaskStatus }) },
      failed: { type: 'final', entry: assign({ status: 'failed' as TaskStatus }) },
      maxIterations: { type: 'final', entry: assign({ status: 'max_iterations' as TaskStatus }) },
      budgetExceeded: { type: 'final', entry: assign({ status: 'budget_exceeded' as TaskStatus }) },
      cancelled: { type: 'final', entry: assign({ status: 'cancelled' as TaskStatus }) },
    },
    output: ({ context }) => ({
      status: context.status ?? 'failed',
      reason: context.reason ?? '',
      iterations: context.iterations,
      totalCostUsd: context.totalCostUsd,
    }),
  });
}

/** The task machine on the wall clock: the one to paste into Stately Studio. */
export const taskMachine = createTaskMachine();
export type TaskMachine = ReturnType<typeof createTaskMachine>;
