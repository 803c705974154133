import { assign, setup } from 'xstate';
import type { Decision, IterationRecord, IterationSummary, RetryPolicy, TaskSpec } from '../src/core/types.js';
import { summarizeIteration } from '../src/decision/history.js';
import { iterationMachine, type SessionStrategy } from './iteration.machine.js';

/**
 * A whole task: iterations one after another (each an invoked `iteration` machine) until the DecisionEngine
 * says `done`, a human is needed, a budget runs out, or an iteration fails.
 *
 * The iteration's `deciding` stage computes a DecisionReport; this machine routes on it with one named guard
 * per action (`decidedDone`, `decidedEscalate`, `decidedCheckpoint`, `decidedRetry`, `decidedClarify`,
 * `decidedProceed`), after the budget guards (`overCostBudget`, ...). The inspector shows which guard chose.
 *
 * The context stays small on purpose: it carries the last few iteration summaries and running totals, never
 * the full history (that goes to the store), so a snapshot costs the same at iteration 10 and 1,000.
 */

export interface Budgets {
  maxIterations: number;
  maxCostUsd: number | null;
  maxTurns: number | null;
  /** Active time: waiting for a human or paused does not count. */
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
  /** How many past iteration summaries the task keeps (the prompt and stuck detection see them). */
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
  /** When the current stretch of work (the `running` state) began; null while at rest. */
  activeSince: number | null;
  /** Time spent working so far (excludes waiting for a human and pauses): the wall-clock budget counts this. */
  activeMs: number;
  lastDecision: Decision | null;
  /** The task machine's guard that routed the last iteration (`decidedRetry`, `overCostBudget`, ...). */
  lastRoute: string | null;
  reason: string | null;
  /** The question put to a human while the task waits in `awaitingHuman`. */
  question: string | null;
  /** A PAUSE arrived while an iteration ran: pause once it is persisted. */
  pauseRequested: boolean;
  /** Set on entering a final state. */
  status: TaskStatus | null;
}

export type TaskEvent =
  | { type: 'HUMAN_ANSWER'; answer: string }
  | { type: 'CONTINUE' }
  | { type: 'PAUSE'; reason?: string }
  | { type: 'CANCEL'; reason?: string };

export type TaskStatus = 'done' | 'escalated' | 'failed' | 'max_iterations' | 'budget_exceeded' | 'cancelled';

export interface TaskOutput {
  status: TaskStatus;
  reason: string;
  iterations: number;
  totalCostUsd: number;
}

/** Node's timers overflow above this; a longer (or no) time budget waits this long and the guard says no. */
const MAX_TIMER_MS = 2_147_483_647;

const recordOf = (event: unknown) => (event as { output: IterationRecord }).output;
const decided = (decision: Decision) => ({ context }: { context: TaskContext }) => context.lastDecision === decision;
/** Records which guard routed the iteration (a parameterised action, so the inspector shows the name too). */
const route = (name: string) => ({ type: 'noteRoute', params: { route: name } }) as const;

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
      // Read from the iteration's output, before it is absorbed.
      iterationFailed: ({ event }) => recordOf(event).decision === 'fail',
      decidedDone: ({ event }) => recordOf(event).decision === 'done',
      // Read from the context, after the iteration was absorbed (in `checkingBudgets`).
      decidedEscalate: decided('escalate'),
      decidedCheckpoint: decided('checkpoint'),
      decidedRetry: decided('retry'),
      decidedClarify: decided('clarify'),
      decidedProceed: decided('proceed'),
      pauseRequested: ({ context }) => context.pauseRequested,
      reachedMaxIterations: ({ context }) => context.iterations >= context.budgets.maxIterations,
      overCostBudget: ({ context }) => context.budgets.maxCostUsd !== null && context.totalCostUsd >= context.budgets.maxCostUsd,
      overTurnBudget: ({ context }) => context.budgets.maxTurns !== null && context.totalTurns >= context.budgets.maxTurns,
      overTimeBudget: ({ context }) => context.budgets.maxWallMs !== null && context.activeMs >= context.budgets.maxWallMs,
      hasTimeBudget: ({ context }) => context.budgets.maxWallMs !== null,
    },
    delays: {
      /** What is left of the wall-clock budget when this stretch of work began. */
      timeBudgetLeft: ({ context }) =>
        context.budgets.maxWallMs === null ? MAX_TIMER_MS : Math.min(MAX_TIMER_MS, Math.max(0, context.budgets.maxWallMs - context.activeMs)),
    },
    actions: {
      startWorking: assign({
        startedAt: ({ context }) => context.startedAt ?? now(),
        activeSince: () => now(),
      }),
      stopWorking: assign({
        activeMs: ({ context }) => context.activeMs + (context.activeSince === null ? 0 : Math.max(0, now() - context.activeSince)),
        activeSince: null,
      }),
      absorbIteration: assign(({ context, event }) => {
        const record = recordOf(event);
        return {
          iterations: context.iterations + 1,
          // A call that came back with a session id means that session now exists: resume it next time.
          sessionId: record.sessionId || context.sessionId,
          sessionStarted: context.sessionStarted || (record.agent !== null && record.agent.outcome.kind === 'answer'),
          recent: [...context.recent, summarizeIteration(record)].slice(-Math.max(1, context.historyWindow)),
          feedback: record.feedback,
          totalCostUsd: context.totalCostUsd + record.costUsd,
          totalTurns: context.totalTurns + record.turns,
          lastDecision: record.decision,
          reason: record.reason,
        };
      }),
      askHuman: assign({ question: ({ context }) => context.reason ?? 'The agent needs a decision.' }),
      takeHumanAnswer: assign(({ context, event }) => ({
        feedback:
          `A human reviewed the last iteration and answered: ${(event as { answer: string }).answer}` +
          (context.feedback ? `\n\nEarlier feedback, for reference:\n${context.feedback}` : ''),
        question: null,
        lastRoute: 'humanAnswered',
      })),
      noteRoute: assign({ lastRoute: (_, params: { route: string }) => params.route }),
      requestPause: assign({ pauseRequested: true }),
      notePause: assign({ pauseRequested: false, reason: ({ context }) => `paused by request after iteration ${context.iterations}` }),
      noteCheckpoint: assign({ pauseRequested: false }),
      noteCostBudget: assign({ reason: ({ context }) => `cost budget of $${context.budgets.maxCostUsd} reached ($${context.totalCostUsd.toFixed(4)} spent in ${context.iterations} iteration(s))` }),
      noteTurnBudget: assign({ reason: ({ context }) => `turn budget of ${context.budgets.maxTurns} reached (${context.totalTurns} agent turns in ${context.iterations} iteration(s))` }),
      noteTimeBudget: assign({
        reason: ({ context }) => `time budget of ${(context.budgets.maxWallMs ?? 0) / 1000}s reached (${(context.activeMs / 1000).toFixed(1)}s of work in ${context.iterations} iteration(s))`,
      }),
      noteTimeBudgetMidIteration: assign({
        activeMs: ({ context }) => context.budgets.maxWallMs ?? context.activeMs,
        activeSince: null,
        reason: ({ context }) =>
          `time budget of ${(context.budgets.maxWallMs ?? 0) / 1000}s reached during iteration ${context.iterations + 1}, which was stopped ` +
          `(${context.iterations} iteration(s) finished)`,
        lastRoute: 'timeBudgetLeft',
      }),
      noteMaxIterations: assign({
        reason: ({ context }) =>
          `stopped after max_iterations (${context.budgets.maxIterations}) without the task being done` +
          (context.lastDecision && context.lastDecision !== 'proceed' ? ` (the last iteration decided ${context.lastDecision}: ${context.reason ?? ''})` : ''),
      }),
      noteUnknownDecision: assign({ reason: ({ context }) => `the iteration decided "${context.lastDecision}", which the task machine cannot route` }),
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
      activeSince: null,
      activeMs: 0,
      lastDecision: null,
      lastRoute: null,
      reason: null,
      question: null,
      pauseRequested: false,
      status: null,
    }),
    initial: 'running',
    on: {
      CANCEL: { target: '.cancelled', actions: ['stopWorking', 'noteCancel', route('cancelled')] },
    },
    states: {
      running: {
        entry: 'startWorking',
        invoke: {
          id: 'iteration',
          src: 'iteration',
          input: ({ context }) => {
            // A clarify decision is a follow-up question in the same conversation, whatever the strategy.
            const followUp = context.lastDecision === 'clarify' && context.sessionStarted && context.sessionId !== null;
            const strategy = followUp && context.sessionStrategy === 'fresh' ? 'resume' : context.sessionStrategy;
            return {
              runId: context.runId,
              index: context.iterations + 1,
              task: context.task,
              sessionId: strategy === 'fresh' ? null : context.sessionId,
              sessionStarted: strategy !== 'fresh' && context.sessionStarted,
              sessionStrategy: strategy,
              history: context.recent,
              feedback: context.feedback,
              retry: context.retry,
            };
          },
          onDone: [
            { guard: 'iterationFailed', target: 'failed', actions: ['stopWorking', 'absorbIteration', route('iterationFailed')] },
            { guard: 'decidedDone', target: 'done', actions: ['stopWorking', 'absorbIteration', route('decidedDone')] },
            { target: 'checkingBudgets', actions: ['stopWorking', 'absorbIteration'] },
          ],
        },
        // The wall-clock budget also stops an iteration that runs past it (its agent call is killed).
        after: {
          timeBudgetLeft: { guard: 'hasTimeBudget', target: 'budgetExceeded', actions: 'noteTimeBudgetMidIteration' },
        },
        on: {
          PAUSE: { actions: 'requestPause' },
        },
      },
      /**
       * Between iterations, after the iteration was persisted: first the budgets (crossing one ends the run),
       * then the decision, each a named guard.
       */
      checkingBudgets: {
        always: [
          { guard: 'overCostBudget', target: 'budgetExceeded', actions: ['noteCostBudget', route('overCostBudget')] },
          { guard: 'overTurnBudget', target: 'budgetExceeded', actions: ['noteTurnBudget', route('overTurnBudget')] },
          { guard: 'overTimeBudget', target: 'budgetExceeded', actions: ['noteTimeBudget', route('overTimeBudget')] },
          { guard: 'reachedMaxIterations', target: 'maxIterations', actions: ['noteMaxIterations', route('reachedMaxIterations')] },
          { guard: 'decidedEscalate', target: 'awaitingHuman', actions: ['askHuman', route('decidedEscalate')] },
          { guard: 'decidedCheckpoint', target: 'paused', actions: ['noteCheckpoint', route('decidedCheckpoint')] },
          { guard: 'pauseRequested', target: 'paused', actions: ['notePause', route('pauseRequested')] },
          { guard: 'decidedRetry', target: 'running', actions: route('decidedRetry') },
          { guard: 'decidedClarify', target: 'running', actions: route('decidedClarify') },
          { guard: 'decidedProceed', target: 'running', actions: route('decidedProceed') },
          { target: 'failed', actions: ['noteUnknownDecision', route('unknownDecision')] },
        ],
      },
      /** Waits for a person (`obra answer <runId> "..."`); survives restarts because it is in the snapshot. */
      awaitingHuman: {
        on: {
          HUMAN_ANSWER: { target: 'running', actions: 'takeHumanAnswer' },
        },
      },
      /** A checkpoint or a user's pause: nothing runs until CONTINUE (`obra resume`). */
      paused: {
        on: { CONTINUE: { target: 'running', actions: route('continued') } },
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
