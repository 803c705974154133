import { assign, setup } from 'xstate';
import type { Decision, IterationRecord, IterationSummary, RetryPolicy, TaskSpec, UsageLimit, UsageLimitPolicy } from '../src/core/types.js';
import type { TaskStatus } from './statuses.js';
import { summarizeIteration } from './summary.js';
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
  /** Permission rules a person granted for the rest of the run (`obra answer --allow`); absent in older runs. */
  allowedTools?: string[];
  /** The usage limit the task waits for in `waitingForUsageLimit`, with the time it goes on (reset + margin). */
  usageLimit?: (UsageLimit & { dueAt: number }) | null;
  /** Set on entering a final state. */
  status: TaskStatus | null;
}

export type TaskEvent =
  /** A person's answer; `allow` grants permission rules for the rest of the run. */
  | { type: 'HUMAN_ANSWER'; answer: string; allow?: string[] }
  | { type: 'CONTINUE' }
  | { type: 'PAUSE'; reason?: string }
  | { type: 'CANCEL'; reason?: string }
  /** Sent after restoring a snapshot: re-enter the usage-limit wait so its timer is scheduled again. */
  | { type: 'RESUMED' };


export interface TaskOutput {
  status: TaskStatus;
  reason: string;
  iterations: number;
  totalCostUsd: number;
}

/** Node's timers overflow above this; a longer (or no) time budget waits this long and the guard says no. */
const MAX_TIMER_MS = 2_147_483_647;

/** Passes the finished iteration's record (the invoke's output) to a guard or an action, typed. */
const theRecord = ({ event }: { event: { output: IterationRecord } }) => event.output;
const withRecord = <T extends string>(type: T) => ({ type, params: theRecord }) as const;
/** The usage-limit policy; runs saved before it existed get the defaults (30 s margin, 8 days at most). */
const usageLimitPolicyOf = (retry: RetryPolicy): UsageLimitPolicy => retry.usageLimit ?? { marginMs: 30_000, maxWaitMs: 8 * 86_400_000 };
const clock = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
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
      iterationFailed: (_, record: IterationRecord) => record.decision === 'fail',
      /** The account's usage limit stopped the iteration (it is not counted and runs again later). */
      iterationSuspended: (_, record: IterationRecord) => record.decision === 'wait',
      /** ... by a limit that resets within `max_limit_wait`: wait for it. (An org's spend limit has no reset.) */
      suspendedUntilReset: ({ context }, record: IterationRecord) => {
        const limit = record.decision === 'wait' ? record.usageLimit : null;
        const policy = usageLimitPolicyOf(context.retry);
        return Boolean(limit && limit.resetsAt !== null && !limit.blockedBy && limit.resetsAt + policy.marginMs - now() <= policy.maxWaitMs);
      },
      decidedDone: (_, record: IterationRecord) => record.decision === 'done',
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
      /** What is left until the usage limit resets (plus the margin): all of it at first, the rest after a restore. */
      usageLimitLeft: ({ context }) => Math.min(MAX_TIMER_MS, Math.max(0, (context.usageLimit?.dueAt ?? now()) - now())),
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
      absorbIteration: assign(({ context }, record: IterationRecord) => {
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
      startUsageLimitWait: assign(({ context }, record: IterationRecord) => {
        const limit = record.usageLimit!;
        const dueAt = limit.resetsAt! + usageLimitPolicyOf(context.retry).marginMs;
        return {
          usageLimit: { ...limit, dueAt },
          reason: `usage limit${limit.limitType ? ` (${limit.limitType})` : ''} — resumes at ${clock(dueAt)}`,
          lastRoute: 'suspendedUntilReset',
        };
      }),
      endUsageLimitWait: assign({ usageLimit: null, lastRoute: 'usageLimitReset' }),
      askAboutUsageLimit: assign(({ context }, record: IterationRecord) => {
        const limit = record.usageLimit;
        const policy = usageLimitPolicyOf(context.retry);
        const why = !limit ? 'the account hit a usage limit'
          : limit.blockedBy ? `the account hit a usage limit that waiting does not lift (${limit.blockedBy})`
          : limit.resetsAt === null ? 'the account hit a usage limit and the CLI gave no reset time'
          : `the account's usage limit resets at ${clock(limit.resetsAt)}, more than agent.local.max_limit_wait (${policy.maxWaitMs / 3_600_000} h) away`;
        const question = `${why}: "${limit?.message ?? ''}". Answer once the limit is lifted (\`obra answer ${context.runId} "go on"\`), or cancel the run.`;
        return { question, reason: question, lastRoute: 'usageLimitWithoutReset' };
      }),
      askHuman: assign({ question: ({ context }) => (context.reason ?? 'The agent needs a decision.').replaceAll('<runId>', context.runId) }),
      takeHumanAnswer: assign(({ context, event }) => {
        if (event.type !== 'HUMAN_ANSWER') return {};
        const { answer, allow = [] } = event;
        const granted = allow.filter((rule) => !(context.allowedTools ?? []).includes(rule));
        const grants = allow.length ? `You may now use: ${allow.join(', ')} (granted for the rest of the task). Do what was refused before.` : '';
        const said = answer.trim() ? `A human reviewed the last iteration and answered: ${answer}` : 'A human reviewed the last iteration.';
        return {
          feedback: [said, grants].filter(Boolean).join('\n') + (context.feedback ? `\n\nEarlier feedback, for reference:\n${context.feedback}` : ''),
          question: null,
          lastRoute: 'humanAnswered',
          ...(granted.length ? { allowedTools: [...(context.allowedTools ?? []), ...granted] } : {}),
        };
      }),
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
      noteCancel: assign({ reason: ({ event }) => (event.type === 'CANCEL' && event.reason) || 'cancelled by the user' }),
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
      allowedTools: [],
      usageLimit: null,
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
              allowedTools: context.allowedTools ?? [],
            };
          },
          // Each guard and action is given the iteration's record (its output): no casts.
          onDone: [
            { guard: withRecord('suspendedUntilReset'), target: 'waitingForUsageLimit', actions: ['stopWorking', withRecord('startUsageLimitWait')] },
            { guard: withRecord('iterationSuspended'), target: 'awaitingHuman', actions: ['stopWorking', withRecord('askAboutUsageLimit')] },
            { guard: withRecord('iterationFailed'), target: 'failed', actions: ['stopWorking', withRecord('absorbIteration'), route('iterationFailed')] },
            { guard: withRecord('decidedDone'), target: 'done', actions: ['stopWorking', withRecord('absorbIteration'), route('decidedDone')] },
            { target: 'checkingBudgets', actions: ['stopWorking', withRecord('absorbIteration')] },
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
          // The last word is the decision: an escalation on the last allowed iteration still asks the human (whose
          // answer buys one more iteration).
          { guard: 'decidedEscalate', target: 'awaitingHuman', actions: ['askHuman', route('decidedEscalate')] },
          { guard: 'reachedMaxIterations', target: 'maxIterations', actions: ['noteMaxIterations', route('reachedMaxIterations')] },
          { guard: 'decidedCheckpoint', target: 'paused', actions: ['noteCheckpoint', route('decidedCheckpoint')] },
          { guard: 'pauseRequested', target: 'paused', actions: ['notePause', route('pauseRequested')] },
          { guard: 'decidedRetry', target: 'running', actions: route('decidedRetry') },
          { guard: 'decidedClarify', target: 'running', actions: route('decidedClarify') },
          { guard: 'decidedProceed', target: 'running', actions: route('decidedProceed') },
          { target: 'failed', actions: ['noteUnknownDecision', route('unknownDecision')] },
        ],
      },
      /**
       * The account's usage limit: nothing runs until it resets (plus a margin), then the suspended iteration runs
       * again on the same session. Time spent here is not working time. A restored wait waits only what is left.
       */
      waitingForUsageLimit: {
        tags: ['resting'],
        after: { usageLimitLeft: { target: 'running', actions: 'endUsageLimitWait' } },
        on: {
          RESUMED: { target: 'waitingForUsageLimit', reenter: true },
          PAUSE: { target: 'paused', actions: ['endUsageLimitWait', 'notePause', route('pauseRequested')] },
        },
      },
      /** Waits for a person (`obra answer <runId> "..."`); survives restarts because it is in the snapshot. */
      awaitingHuman: {
        tags: ['resting', 'escalated'],
        on: {
          HUMAN_ANSWER: { target: 'running', actions: 'takeHumanAnswer' },
        },
      },
      /** A checkpoint or a user's pause: nothing runs until CONTINUE (`obra resume`). */
      paused: {
        tags: ['resting', 'paused'],
        // `obra resume` of a paused run: CONTINUE, or RESUMED (what the engine sends to any restored run).
        on: { CONTINUE: { target: 'running', actions: route('continued') }, RESUMED: { target: 'running', actions: route('continued') } },
      },
      done: { type: 'final', tags: ['resting'], entry: assign({ status: 'done' as TaskStatus }) },
      failed: { type: 'final', tags: ['resting'], entry: assign({ status: 'failed' as TaskStatus }) },
      maxIterations: { type: 'final', tags: ['resting'], entry: assign({ status: 'max_iterations' as TaskStatus }) },
      budgetExceeded: { type: 'final', tags: ['resting'], entry: assign({ status: 'budget_exceeded' as TaskStatus }) },
      cancelled: { type: 'final', tags: ['resting'], entry: assign({ status: 'cancelled' as TaskStatus }) },
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
