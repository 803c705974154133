import { and, assign, fromPromise, setup } from 'xstate';
import type {
  AgentCallRecord,
  AgentOutcome,
  ConfidenceReport,
  DecisionReport,
  IterationRecord,
  IterationStateName,
  IterationSummary,
  PermissionDenial,
  QualityReport,
  RetryPolicy,
  SessionMode,
  TaskSpec,
  UsageLimit,
  ValidationVerdict,
} from '../src/core/types.js';
import { backoffDelayMs, rateLimitPolicyOf, seededUnit } from './backoff.js';
import { errorText } from './errors.js';

/**
 * One iteration of a task as a statechart:
 *
 *   building → prompting → awaitingAgent ⇄ retryingSessionLock → validating → scoring → deciding → persisting → complete
 *
 * What a call came back with is routed by one transient state, `routingOutcome`, whose named guards read the
 * recorded call from the context: the same session resumed, a fresh one, a backoff wait, a silent call re-issued,
 * `suspended` at the account's usage limit (the task waits for the reset and runs the iteration again), a
 * failure, or the answer on to `validating`.
 *
 * The file holds no I/O. Each stage is a named `fromPromise` actor whose real implementation comes from
 * `src/engine/implementations.ts` through `machine.provide()`; the placeholders below only say what is missing.
 * Time is injected too (`withClock`), so tests drive backoff with XState's SimulatedClock.
 */

export type SessionStrategy = 'resume' | 'fresh' | 'fork';

export interface IterationInput {
  runId: string;
  index: number;
  task: TaskSpec;
  /** The run's session; `null` asks the agent for a brand-new one (strategy `fresh`, or after "no conversation"). */
  sessionId: string | null;
  /** Whether a call has already created `sessionId` (then later calls resume it instead of creating it). */
  sessionStarted: boolean;
  sessionStrategy: SessionStrategy;
  history: IterationSummary[];
  feedback: string | null;
  retry: RetryPolicy;
  /** Permission rules a person granted for the rest of the run (`obra answer --allow`); absent in older runs. */
  allowedTools?: string[];
}

/** The backoff wait in progress: why, which retry of how many, how long, until when. */
export interface BackoffWait {
  kind: 'sessionBusy' | 'rateLimited';
  attempt: number;
  maxRetries: number;
  delayMs: number;
  dueAt: number;
  /** Set when Obra's own lock is held (another task, another Obra process): its release ends the wait. */
  holder?: string;
  /** Set when the wait is the account's: another task's call was rate limited, and every task waits until then. */
  shared?: boolean;
}

export interface IterationContext extends IterationInput {
  states: IterationStateName[];
  sessionMode: SessionMode;
  attempts: number;
  /** Backoff waits for a busy session so far in this iteration (the `attempt` of the backoff formula). */
  retries: number;
  /** Backoff waits for a rate-limited or overloaded API so far (its own policy and counter). */
  rateLimitRetries: number;
  /**
   * Waits for a session held by Obra's own lock. They do not use up `retries`: the holder announces its release
   * (an event ends the wait) and its call is bounded by its own timeout; the timer is only a safety net.
   */
  holderWaits: number;
  retryDelaysMs: number[];
  /** Absolute clock time the current backoff wait ends. Stored so a restored run waits only what is left. */
  retryDueAt: number | null;
  /** The current (or last) backoff wait; `null` before the first. */
  wait: BackoffWait | null;
  /** Session changes made on the way (resume instead of create, a fresh session), each with its reason. */
  sessionNotes: string[];
  /** How many times this iteration changed sessions (bounded, so two CLI errors cannot ping-pong forever). */
  sessionSwitches: number;
  /** Silent calls killed and re-issued so far (`agent.local.idle_retries` at most). */
  idleRetries: number;
  /** Set when the account's usage limit suspended the iteration (final state `suspended`). */
  usageLimit: UsageLimit | null;
  startedAt: number | null;
  builtContext: string | null;
  prompt: string | null;
  call: AgentCallRecord | null;
  validation: ValidationVerdict | null;
  quality: QualityReport | null;
  confidence: ConfidenceReport | null;
  decision: DecisionReport | null;
  failure: string | null;
  finishedAt: number | null;
}

export type IterationEvent =
  /** The session the wait is for became free (sent by the engine's session lock): stop waiting now. */
  | { type: 'SESSION_RELEASED' }
  /** Sent after restoring a snapshot: re-enter the current wait so its timer is scheduled again. */
  | { type: 'RESUMED' };

export interface BuildContextInput {
  task: TaskSpec;
  index: number;
  history: IterationSummary[];
  feedback: string | null;
}
export interface GeneratePromptInput {
  task: TaskSpec;
  index: number;
  context: string;
}
export interface CallAgentInput {
  runId: string;
  index: number;
  attempt: number;
  prompt: string;
  sessionId: string | null;
  mode: SessionMode;
  workdir: string;
  /** Permission rules a person granted for the run (the engine adds the config's). */
  allowedTools: string[];
  /** The task's check commands (the engine may allow them as Bash tools). */
  checks: string[];
}
export interface ValidateInput {
  task: TaskSpec;
  call: AgentCallRecord;
}
export interface ScoreInput {
  task: TaskSpec;
  index: number;
  call: AgentCallRecord;
  validation: ValidationVerdict;
  history: IterationSummary[];
}
export interface ScoreOutput {
  quality: QualityReport;
  confidence: ConfidenceReport;
}
export interface DecideInput {
  task: TaskSpec;
  index: number;
  validation: ValidationVerdict;
  quality: QualityReport;
  confidence: ConfidenceReport;
  history: IterationSummary[];
  /** The tool uses the agent was refused during the call. */
  denials: PermissionDenial[];
}

function notProvided<I, O>(name: string) {
  return fromPromise<O, I>(async () => {
    throw new Error(`The iteration machine's "${name}" actor was not provided (use machine.provide()).`);
  });
}

/** The outcome of the call just recorded (what `routingOutcome`'s guards route on). */
const outcomeOf = (context: IterationContext): AgentOutcome | undefined => context.call?.outcome;
const is = (kind: AgentOutcome['kind']) => ({ context }: { context: IterationContext }) => outcomeOf(context)?.kind === kind;

/** Session changes allowed per iteration (create→resume, then a fresh session, then resume it once more). */
const MAX_SESSION_SWITCHES = 3;

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** The delay before backoff retry `attempt`; jitter is seeded by the run, iteration and call, so replay agrees. */
function nextWait(context: IterationContext, kind: BackoffWait['kind'], attempt: number, at: number): BackoffWait {
  const policy = kind === 'sessionBusy' ? context.retry : rateLimitPolicyOf(context.retry);
  const delayMs = backoffDelayMs(attempt, policy, () => seededUnit(`${context.runId}/${context.index}/${context.attempts}`));
  return { kind, attempt, maxRetries: policy.maxRetries, delayMs, dueAt: at + delayMs };
}

/** The context fields every backoff wait sets: the wait itself, its delay in the record, its absolute due time. */
function startWait(context: IterationContext, wait: BackoffWait) {
  return { wait, retryDelaysMs: [...context.retryDelaysMs, wait.delayMs], retryDueAt: wait.dueAt };
}

/** The message of a call's outcome (every outcome but an answer has one). */
function messageOf(outcome: AgentCallRecord['outcome'] | undefined, fallback: string): string {
  return outcome && 'message' in outcome ? outcome.message : fallback;
}

const waitedMs = (context: IterationContext) => context.retryDelaysMs.reduce((a, b) => a + b, 0);
/** Re-issues of a silent call; runs saved before the watchdog existed get the default. */
const idleRetriesOf = (retry: RetryPolicy) => retry.idleRetries ?? 2;

const busyHolder = (context: IterationContext) => {
  const outcome = context.call?.outcome;
  return outcome?.kind === 'sessionBusy' && outcome.holder ? outcome.holder : null;
};

const initialMode = (input: IterationInput): SessionMode => {
  if (input.sessionId === null || !input.sessionStarted) return 'create';
  return input.sessionStrategy === 'fork' ? 'fork' : 'resume';
};

function buildRecord(context: IterationContext): IterationRecord {
  const call = context.call;
  const answer = call?.outcome.kind === 'answer' ? call.outcome.result : null;
  return {
    runId: context.runId,
    index: context.index,
    states: context.states,
    attempts: context.attempts,
    retryDelaysMs: context.retryDelaysMs,
    sessionId: call?.sessionId ?? context.sessionId ?? '',
    sessionMode: call?.mode ?? context.sessionMode,
    prompt: context.prompt ?? '',
    agent: call,
    validation: context.validation,
    quality: context.quality?.score ?? null,
    qualityBreakdown: context.quality?.breakdown ?? {},
    checks: context.quality?.checks ?? [],
    confidence: context.confidence?.score ?? null,
    confidenceExplanation: context.confidence?.explanation ?? [],
    decision: context.usageLimit ? 'wait' : context.failure ? 'fail' : (context.decision?.decision ?? 'fail'),
    decisionRule: context.usageLimit ? 'usageLimit' : context.failure ? 'iterationFailed' : (context.decision?.rule ?? 'none'),
    reason: context.usageLimit ? usageLimitReason(context.usageLimit) : (context.failure ?? context.decision?.reason ?? ''),
    feedback: context.decision?.feedback ?? null,
    costUsd: answer?.total_cost_usd ?? 0,
    turns: answer?.num_turns ?? 0,
    startedAt: context.startedAt ?? 0,
    finishedAt: context.finishedAt ?? context.startedAt ?? 0,
    failure: context.failure,
    sessionNotes: context.sessionNotes,
    permissionDenials: call?.permissionDenials ?? [],
    usageLimit: context.usageLimit,
  };
}

function usageLimitReason(limit: UsageLimit): string {
  return `the account's usage limit${limit.limitType ? ` (${limit.limitType})` : ''} was reached: ${limit.message}`;
}

const enter = (state: IterationStateName) => ({ type: 'enterState', params: { state } }) as const;

/**
 * Builds the machine around a clock: `now` is read by the named delay `backoffDelay` and by the actions that
 * stamp times. `iterationMachine` below uses `Date.now`; tests and replay pass XState's SimulatedClock's `now`.
 */
export function createIterationMachine(now: () => number = Date.now) {
  return setup({
    types: {
      input: {} as IterationInput,
      context: {} as IterationContext,
      events: {} as IterationEvent,
      output: {} as IterationRecord,
    },
    actors: {
      buildContext: notProvided<BuildContextInput, string>('buildContext'),
      generatePrompt: notProvided<GeneratePromptInput, string>('generatePrompt'),
      callAgent: notProvided<CallAgentInput, AgentCallRecord>('callAgent'),
      validateResponse: notProvided<ValidateInput, ValidationVerdict>('validateResponse'),
      scoreResponse: notProvided<ScoreInput, ScoreOutput>('scoreResponse'),
      decide: notProvided<DecideInput, DecisionReport>('decide'),
      persistIteration: notProvided<IterationRecord, void>('persistIteration'),
    },
    guards: {
      // Each reads the call `recordCall` just stored: `routingOutcome` tries them in order, the first that holds wins.
      /** The session is in use: by another call of this process or another Obra (our lock), or the CLI said so. */
      sessionBusy: is('sessionBusy'),
      /** The API answered 429 (rate limited) or 529 (overloaded): waited out with the rate-limit policy. */
      rateLimited: is('rateLimited'),
      /** The account's usage limit: the iteration is suspended; the task waits for the reset (or asks a human). */
      usageLimited: is('usageLimit'),
      /** The call printed nothing for `idle_timeout` and was killed. */
      stalled: is('stalled'),
      /** No call was made: the account is rate limited (another task was refused); wait with the others. */
      sharedRateLimit: ({ context }) => {
        const outcome = outcomeOf(context);
        return outcome?.kind === 'rateLimited' && outcome.sharedUntil !== undefined;
      },
      /**
       * The *CLI* said "Session ID U is already in use" while we were *creating* U: a call of ours already created
       * it (`--session-id` only creates; the error is permanent), so resume it at once instead of waiting.
       */
      sessionCreatedByUs: ({ context }) => {
        const outcome = outcomeOf(context);
        return outcome?.kind === 'sessionBusy' && !outcome.holder && context.sessionMode === 'create' && context.sessionSwitches < MAX_SESSION_SWITCHES;
      },
      noConversation: ({ context }) => outcomeOf(context)?.kind === 'noConversation' && context.sessionSwitches < MAX_SESSION_SWITCHES,
      canRetry: ({ context }) => context.retries < context.retry.maxRetries,
      canRetryRateLimit: ({ context }) => context.rateLimitRetries < rateLimitPolicyOf(context.retry).maxRetries,
      canReissueStalled: ({ context }) => context.idleRetries < idleRetriesOf(context.retry),
      freshAfterExhaustion: ({ context }) =>
        context.retry.onExhausted === 'fresh' && context.sessionId !== null && context.sessionSwitches < MAX_SESSION_SWITCHES,
      /** Another task or Obra process holds the session: wait for its release, however long its call runs. */
      heldByObra: ({ context }) => {
        const outcome = outcomeOf(context);
        return outcome?.kind === 'sessionBusy' && Boolean(outcome.holder);
      },
      /** Only a wait for a busy session ends early on a release; a rate-limit wait is about the API, not the session. */
      waitingForSession: ({ context }) => context.wait?.kind === 'sessionBusy',
      agentFailedFatally: is('fatal'),
    },
    delays: {
      /** What is left of the current backoff wait: all of it on first entry, the remainder after a restore. */
      backoffDelay: ({ context }) => Math.max(0, (context.retryDueAt ?? now()) - now()),
    },
    actions: {
      stampStart: assign({ startedAt: ({ context }) => context.startedAt ?? now() }),
      stampFinish: assign({ finishedAt: () => now() }),
      /** Starts backoff wait number `retries`: its length comes from the policy, its absolute due time is stored. */
      scheduleRetry: assign(({ context }) => {
        const retries = context.retries + 1;
        return { retries, ...startWait(context, nextWait(context, 'sessionBusy', retries, now())) };
      }),
      /** A wait for Obra's own lock: the session policy's delays (capped by retry_max_delay), its own counter. */
      scheduleHolderWait: assign(({ context }) => {
        const holderWaits = context.holderWaits + 1;
        const wait = { ...nextWait(context, 'sessionBusy', holderWaits, now()), holder: busyHolder(context) ?? 'Obra' };
        return { holderWaits, ...startWait(context, wait) };
      }),
      /** The account's rate-limit wait, shared with the other tasks: until its end; no retry is used up. */
      scheduleSharedWait: assign(({ context }) => {
        const outcome = outcomeOf(context);
        const dueAt = outcome?.kind === 'rateLimited' && outcome.sharedUntil !== undefined ? outcome.sharedUntil : now();
        const policy = rateLimitPolicyOf(context.retry);
        const wait: BackoffWait = { kind: 'rateLimited', attempt: context.rateLimitRetries, maxRetries: policy.maxRetries, delayMs: Math.max(0, dueAt - now()), dueAt, shared: true };
        return startWait(context, wait);
      }),
      /** The same for a rate-limited or overloaded API, on its own policy and counter. */
      scheduleRateLimitRetry: assign(({ context }) => {
        const rateLimitRetries = context.rateLimitRetries + 1;
        return { rateLimitRetries, ...startWait(context, nextWait(context, 'rateLimited', rateLimitRetries, now())) };
      }),
      enterState: assign({
        // Re-entering the same state (a restored wait, a re-issued call) is not a new step of the iteration.
        states: ({ context }, params: { state: IterationStateName }) =>
          context.states.at(-1) === params.state ? context.states : [...context.states, params.state],
      }),
      recordCall: assign(({ context }, call: AgentCallRecord) => ({
        call,
        // The agent may have picked the id (a new session): later calls must use it. (A call never made has none.)
        sessionId: call.sessionId || context.sessionId,
      })),
      resetRetries: assign({ retries: 0 }),
      switchToResume: assign(({ context }) => ({
        sessionMode: 'resume' as SessionMode,
        sessionStarted: true,
        sessionSwitches: context.sessionSwitches + 1,
        sessionNotes: [...context.sessionNotes, `session ${context.call?.sessionId ?? context.sessionId} already exists (an earlier call created it): resuming it with --resume instead of waiting`],
      })),
      /** A new session: the next call creates one; the prompt already carries the task's history (ContextManager). */
      startFreshSession: assign(({ context }, params: { why: 'noConversation' | 'lockExhausted' }) => {
        const old = context.call?.sessionId ?? context.sessionId;
        const outcome = context.call?.outcome;
        const why =
          params.why === 'noConversation'
            ? `session ${old} was not found (${messageOf(outcome, 'no conversation')}; the CLI keeps sessions per working directory)`
            : `session ${old} was still in use after ${context.retry.maxRetries} retries (the CLI kept refusing it)`;
        return {
          sessionId: null,
          sessionMode: 'create' as SessionMode,
          sessionStarted: false,
          sessionSwitches: context.sessionSwitches + 1,
          sessionNotes: [...context.sessionNotes, `${why}: continuing in a new session; the prompt carries the task's history`],
        };
      }),
      /** A silent call was killed: the same call again, on the same session (its transcript exists, so --resume). */
      reissueStalled: assign(({ context }) => ({
        idleRetries: context.idleRetries + 1,
        sessionNotes: [
          ...context.sessionNotes,
          `${messageOf(outcomeOf(context), 'the call went silent')}: re-issued on session ${context.call?.sessionId ?? context.sessionId} ` +
            `(${context.idleRetries + 1}/${idleRetriesOf(context.retry)})`,
        ],
      })),
      failStalled: assign({
        failure: ({ context }) => {
          const calls = context.idleRetries + 1;
          return `${messageOf(outcomeOf(context), 'the agent went silent')}; that happened on ${calls} call${calls === 1 ? '' : 's'} in a row ` +
            `(re-issued ${context.idleRetries} time${context.idleRetries === 1 ? '' : 's'}, agent.local.idle_retries)`;
        },
      }),
      suspendForUsageLimit: assign({
        usageLimit: ({ context }) => {
          const outcome = outcomeOf(context);
          return outcome?.kind === 'usageLimit'
            ? { limitType: outcome.limitType, resetsAt: outcome.resetsAt, blockedBy: outcome.blockedBy, message: outcome.message }
            : null;
        },
      }),
      failWithOutcome: assign({
        failure: ({ context }) => `agent call failed: ${messageOf(context.call?.outcome, 'unknown error')}`,
      }),
      failLockExhausted: assign({
        failure: ({ context }) =>
          `session ${context.call?.sessionId ?? context.sessionId} still busy after ${context.retry.maxRetries} retries ` +
          `(waited ${(waitedMs(context) / 1000).toFixed(3)}s); ` +
          'set agent.local.on_lock_exhausted: fresh to continue in a new session instead',
      }),
      failRateLimitExhausted: assign({
        failure: ({ context }) => {
          const outcome = context.call?.outcome;
          const status = outcome?.kind === 'rateLimited' ? outcome.status : '?';
          return `the API was still rate limited or overloaded (${status}) after ${rateLimitPolicyOf(context.retry).maxRetries} retries ` +
            `(waited ${seconds(waitedMs(context))}): ${messageOf(outcome, '')}`.trim();
        },
      }),
    },
  }).createMachine({
    id: 'iteration',
    context: ({ input }) => ({
      ...input,
      states: [],
      sessionMode: initialMode(input),
      attempts: 0,
      retries: 0,
      rateLimitRetries: 0,
      holderWaits: 0,
      retryDelaysMs: [],
      retryDueAt: null,
      wait: null,
      sessionNotes: [],
      sessionSwitches: 0,
      idleRetries: 0,
      usageLimit: null,
      startedAt: null,
      builtContext: null,
      prompt: null,
      call: null,
      validation: null,
      quality: null,
      confidence: null,
      decision: null,
      failure: null,
      finishedAt: null,
    }),
    initial: 'building',
    states: {
      building: {
        entry: [enter('building'), 'stampStart'],
        invoke: {
          src: 'buildContext',
          input: ({ context }) => ({ task: context.task, index: context.index, history: context.history, feedback: context.feedback }),
          onDone: { target: 'prompting', actions: assign({ builtContext: ({ event }) => event.output }) },
          onError: { target: 'persisting', actions: assign({ failure: ({ event }) => `building the context failed: ${errorText(event.error)}` }) },
        },
      },
      prompting: {
        entry: enter('prompting'),
        invoke: {
          src: 'generatePrompt',
          input: ({ context }) => ({ task: context.task, index: context.index, context: context.builtContext ?? '' }),
          onDone: { target: 'awaitingAgent', actions: assign({ prompt: ({ event }) => event.output }) },
          onError: { target: 'persisting', actions: assign({ failure: ({ event }) => `rendering the prompt failed: ${errorText(event.error)}` }) },
        },
      },
      awaitingAgent: {
        entry: [enter('awaitingAgent'), assign({ attempts: ({ context }) => context.attempts + 1 })],
        invoke: {
          src: 'callAgent',
          input: ({ context }) => ({
            runId: context.runId,
            index: context.index,
            attempt: context.attempts,
            prompt: context.prompt ?? '',
            sessionId: context.sessionId,
            mode: context.sessionMode,
            workdir: context.task.workdir,
            allowedTools: context.allowedTools ?? [],
            checks: context.task.checks,
          }),
          onDone: { target: 'routingOutcome', actions: { type: 'recordCall', params: ({ event }) => event.output } },
          onError: { target: 'persisting', actions: assign({ failure: ({ event }) => `the agent actor crashed: ${errorText(event.error)}` }) },
        },
      },
      /** Where the call just recorded leads: every way a call can end is one named guard; the first that holds wins. */
      routingOutcome: {
        always: [
          { guard: 'sessionCreatedByUs', target: 'awaitingAgent', actions: 'switchToResume' },
          { guard: 'noConversation', target: 'awaitingAgent', actions: { type: 'startFreshSession', params: { why: 'noConversation' } } },
          { guard: 'heldByObra', target: 'retryingSessionLock', actions: 'scheduleHolderWait' },
          { guard: and(['sessionBusy', 'canRetry']), target: 'retryingSessionLock', actions: 'scheduleRetry' },
          {
            guard: and(['sessionBusy', 'freshAfterExhaustion']),
            target: 'awaitingAgent',
            actions: [{ type: 'startFreshSession', params: { why: 'lockExhausted' } }, 'resetRetries'],
          },
          { guard: 'sessionBusy', target: 'persisting', actions: 'failLockExhausted' },
          { guard: 'usageLimited', target: 'suspended', actions: 'suspendForUsageLimit' },
          { guard: 'sharedRateLimit', target: 'retryingSessionLock', actions: 'scheduleSharedWait' },
          { guard: and(['rateLimited', 'canRetryRateLimit']), target: 'retryingSessionLock', actions: 'scheduleRateLimitRetry' },
          { guard: 'rateLimited', target: 'persisting', actions: 'failRateLimitExhausted' },
          { guard: and(['stalled', 'canReissueStalled']), target: 'awaitingAgent', actions: 'reissueStalled' },
          { guard: 'stalled', target: 'persisting', actions: 'failStalled' },
          { guard: 'agentFailedFatally', target: 'persisting', actions: 'failWithOutcome' },
          // answer, malformed, timeout, crashed: the validator judges them (a timeout is a bad answer, not a crash).
          { target: 'validating' },
        ],
      },
      retryingSessionLock: {
        tags: ['resting', 'backoff'],
        entry: enter('retryingSessionLock'),
        // `retryDueAt` is kept on exit on purpose: re-entering after a restore (RESUMED) must find it.
        after: { backoffDelay: { target: 'awaitingAgent' } },
        on: {
          SESSION_RELEASED: { guard: 'waitingForSession', target: 'awaitingAgent' },
          RESUMED: { target: 'retryingSessionLock', reenter: true },
        },
      },
      validating: {
        entry: enter('validating'),
        invoke: {
          src: 'validateResponse',
          input: ({ context }) => ({ task: context.task, call: context.call! }),
          onDone: { target: 'scoring', actions: assign({ validation: ({ event }) => event.output }) },
          onError: { target: 'persisting', actions: assign({ failure: ({ event }) => `validation crashed: ${errorText(event.error)}` }) },
        },
      },
      scoring: {
        entry: enter('scoring'),
        invoke: {
          src: 'scoreResponse',
          input: ({ context }) => ({
            task: context.task,
            index: context.index,
            call: context.call!,
            validation: context.validation!,
            history: context.history,
          }),
          onDone: {
            target: 'deciding',
            actions: assign({ quality: ({ event }) => event.output.quality, confidence: ({ event }) => event.output.confidence }),
          },
          onError: { target: 'persisting', actions: assign({ failure: ({ event }) => `scoring crashed: ${errorText(event.error)}` }) },
        },
      },
      deciding: {
        entry: enter('deciding'),
        invoke: {
          src: 'decide',
          input: ({ context }) => ({
            task: context.task,
            index: context.index,
            validation: context.validation!,
            quality: context.quality!,
            confidence: context.confidence!,
            history: context.history,
            denials: context.call?.permissionDenials ?? [],
          }),
          onDone: { target: 'persisting', actions: assign({ decision: ({ event }) => event.output }) },
          onError: { target: 'persisting', actions: assign({ failure: ({ event }) => `deciding crashed: ${errorText(event.error)}` }) },
        },
      },
      persisting: {
        entry: [enter('persisting'), 'stampFinish'],
        invoke: {
          src: 'persistIteration',
          input: ({ context }) => buildRecord(context),
          onDone: { target: 'complete' },
          // The record could not be saved: the run must stop (the task machine fails it) rather than lose it.
          onError: { target: 'complete', actions: assign({ failure: ({ event }) => `persisting the iteration failed: ${errorText(event.error)}` }) },
        },
      },
      complete: {
        type: 'final',
      },
      /**
       * The account's usage limit stopped the call: the iteration ends unrecorded (decision `wait`) and the task
       * waits for the reset (or asks a human when there is nothing to wait for), then runs it again.
       */
      suspended: {
        type: 'final',
        tags: ['resting'],
      },
    },
    output: ({ context }) => buildRecord(context),
  });
}

/** The iteration machine on the wall clock: the one to paste into Stately Studio. */
export const iterationMachine = createIterationMachine();

export type IterationMachine = ReturnType<typeof createIterationMachine>;
