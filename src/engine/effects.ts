import { fromPromise, type ActorSystem } from 'xstate';
import type {
  BuildContextInput,
  CallAgentInput,
  DecideInput,
  GeneratePromptInput,
  ScoreInput,
  ScoreOutput,
  ValidateInput,
} from '../../machines/iteration.machine.js';
import { backoffDelayMs, rateLimitPolicyOf } from '../../machines/backoff.js';
import type { AccountLimits, KnownUsageLimit, SharedRateLimit } from '../agents/account-limits.js';
import type { CallSlots } from '../agents/call-slots.js';
import type { Agent, AgentProgress } from '../agents/agent.js';
import { checkRules } from '../agents/permissions.js';
import { retryPolicyFromConfig } from '../agents/retry-policy.js';
import type { ObraConfig } from '../config/schema.js';
import { ContextManager } from '../context/context-manager.js';
import type { AgentCallRecord, DecisionReport, IterationRecord, ValidationVerdict } from '../core/types.js';
import { PromptGenerator } from '../prompt/prompt-generator.js';
import { runChecks } from '../scoring/checks.js';
import { createJudging } from '../scoring/judging.js';

/**
 * What each of the iteration machine's named actors does, and whether that leaves the process. The machine
 * only names them (`callAgent`, `scoreResponse`, ...); `src/engine/machines.ts` provides these.
 *
 * An effect's kind decides what the journal must have done before it starts (write-ahead): `outside` acts
 * outside the process (the agent, a check command, an LLM judge) — every transition that led to it is made
 * durable first; `store` writes the store's own copy (the iteration record) — what led to it is written first;
 * `none` is pure computation, which a restored run simply does again.
 */
export type StepEffect = 'none' | 'store' | 'outside';

export interface Work<I, O> {
  run(args: { input: I; signal: AbortSignal }): Promise<O>;
  /** What this actor does, given its input. */
  effect(input: I): StepEffect;
}

export interface EffectDeps {
  config: ObraConfig;
  agent: Agent;
  /** Keeps a finished iteration's record (idempotently: a restored `persisting` may run it twice). */
  saveIteration: (record: IterationRecord) => void | Promise<void>;
  /** Whether saving the record acts outside the process (see RunPort.savesOutside). */
  savesOutside?: boolean;
  /**
   * True once, for the first agent call of a drive restored with that call in flight (a crash cut it): the
   * session's transcript is asked what became of it before the call is made again (see Agent.recover).
   */
  takeCutCall?: () => boolean;
  onAgentProgress?: (progress: AgentProgress, input: CallAgentInput) => void;
  /** An agent call came back with an answer (for the progress lines). */
  onResponse?: (call: AgentCallRecord, input: CallAgentInput) => void;
  /** Runs the user's checks; the shell runner by default. */
  checks?: typeof runChecks;
  /** The account's limits, shared by the tasks of a store: no call starts while one is in force. */
  limits?: AccountLimits;
  /** The cap on agent calls in flight across the store's tasks. */
  slots?: CallSlots;
  /** The engine's clock (the limit's reset is compared with it). */
  now: () => number;
}

export interface IterationWork {
  buildContext: Work<BuildContextInput, string>;
  generatePrompt: Work<GeneratePromptInput, string>;
  callAgent: Work<CallAgentInput, AgentCallRecord>;
  validateResponse: Work<ValidateInput, ValidationVerdict>;
  scoreResponse: Work<ScoreInput, ScoreOutput>;
  decide: Work<DecideInput, DecisionReport>;
  persistIteration: Work<IterationRecord, void>;
}

const pure = <I, O>(run: (input: I) => O | Promise<O>): Work<I, O> => ({ run: async ({ input }) => run(input), effect: () => 'none' });

/** The real work behind the iteration machine's named stages: each a thin wrapper around one component. */
export function iterationWork(deps: EffectDeps): IterationWork {
  const { config } = deps;
  const contextManager = new ContextManager({ maxChars: config.context.max_chars, historyWindow: config.context.history_window });
  const prompts = new PromptGenerator();
  // Validation, checks, quality (with the optional LLM judge), confidence and the decision: src/scoring/judging.ts.
  const judging = createJudging(config, { runChecks: deps.checks });
  // The account's shared rate-limit wait grows like a task's own (rate_limit_*), without jitter.
  const ratePolicy = { ...rateLimitPolicyOf(retryPolicyFromConfig(config.agent.local)), jitter: 'none' as const };

  return {
    buildContext: pure((input) => contextManager.build(input)),
    generatePrompt: pure((input) => prompts.render({ context: input.context, iteration: input.index })),
    callAgent: {
      effect: () => 'outside',
      run: async ({ input, signal }) => {
        const known = deps.limits?.inForce(deps.now());
        if (known?.usageLimit) return limitedCall(input, known.usageLimit, deps.now());
        // The account's wait is for the *other* tasks: the one refused follows its own backoff (its own retries).
        if (known?.rateLimit && known.rateLimit.runId !== input.runId) return sharedRateLimitCall(input, known.rateLimit, deps.now());
        const { checks, ...asked } = input;
        let request: typeof asked = asked;
        let recovered: AgentCallRecord['recovered'];
        let stoppedEarlierCall: AgentCallRecord['stoppedEarlierCall'];
        const onProgress = deps.onAgentProgress ? (progress: AgentProgress) => deps.onAgentProgress!(progress, input) : undefined;
        if (deps.takeCutCall?.() && deps.agent.recover) {
          const cut = await deps.agent.recover({ ...asked, signal, onProgress });
          stoppedEarlierCall = cut.stoppedEarlierCall;
          if (cut.kind === 'answered') {
            deps.onResponse?.(cut.record, input);
            return cut.record;
          }
          if (cut.kind === 'unanswered') {
            // The prompt is in the conversation already: asking it again would put it there twice.
            request = { ...asked, prompt: continuationPrompt() };
            recovered = { how: 'continued', note: cut.note };
          }
        }
        // A free slot is taken at once (the call starts in this same step); else the call waits for one.
        const slots = deps.agent.inProcess ? undefined : deps.slots;
        const release = slots ? (slots.tryAcquire() ?? (await slots.acquire(signal))) : undefined;
        const startedAt = deps.now();
        let record: AgentCallRecord;
        try {
          record = await deps.agent.call({
            ...request,
            // The task's own checks are allowed as Bash tools (agent.local.allow_checks), with what a person granted.
            allowedTools: [...(config.agent.local.allow_checks ? checkRules(checks ?? []) : []), ...(input.allowedTools ?? [])],
            signal,
            onProgress,
          });
        } finally {
          release?.();
        }
        if (recovered) record = { ...record, recovered };
        // The older call the recovery stopped is this call's to report (the lock was free again when it started).
        if (stoppedEarlierCall && !record.stoppedEarlierCall) record = { ...record, stoppedEarlierCall };
        const outcome = record.outcome;
        if (outcome.kind === 'usageLimit') deps.limits?.note(outcome, input.runId, deps.now());
        if (outcome.kind === 'rateLimited') deps.limits?.noteRateLimited(outcome.status, outcome.message, input.runId, deps.now(), (strikes) => backoffDelayMs(strikes, ratePolicy));
        if (outcome.kind === 'answer') {
          deps.limits?.noteAnswered(startedAt);
          deps.onResponse?.(record, input);
        }
        return record;
      },
    },
    validateResponse: pure((input) => judging.validate(input.call, input.task)),
    scoreResponse: {
      // Checks and the LLM judge act outside; without them scoring is pure computation.
      effect: (input) => ((input.task?.checks?.length ?? 0) > 0 || input.task?.conflictGate || config.quality.judge.enabled ? 'outside' : 'none'),
      run: ({ input, signal }) => judging.score(input, signal),
    },
    decide: pure((input) => judging.decide(input)),
    persistIteration: { effect: () => (deps.savesOutside ? 'outside' : 'store'), run: async ({ input }) => deps.saveIteration(input) },
  };
}

/**
 * What a call cut by a crash is continued with when its prompt reached the session but no complete answer did:
 * the conversation already holds the prompt (and whatever the agent did of it), so it is asked to go on.
 */
export function continuationPrompt(): string {
  return [
    'Your previous turn was cut off before it finished: the process running it was stopped (Obra, which drives',
    'you, was restarted). The request above still stands. Continue it from where you stopped (the files are as you',
    'left them), finish it, and end your answer as that request asks.',
  ].join(' ');
}

/** The call not made because the account's usage limit is in force: the iteration is suspended like a refused one. */
function limitedCall(input: CallAgentInput, limit: KnownUsageLimit, at: number): AgentCallRecord {
  const message = `no call made: this account's usage limit${limit.limitType ? ` (${limit.limitType})` : ''} is in force until ${new Date(limit.resetsAt).toISOString()} (seen by run ${limit.runId}: "${limit.message}")`;
  return {
    outcome: { kind: 'usageLimit', limitType: limit.limitType, resetsAt: limit.resetsAt, blockedBy: null, message },
    argv: [],
    sessionId: input.sessionId ?? '',
    mode: input.mode,
    exitCode: null,
    signal: null,
    stdout: '',
    stderr: '',
    startedAt: at,
    durationMs: 0,
    finishedAt: at,
  };
}

/** The call not made because the account is rate limited: the task waits with the others, until then. */
function sharedRateLimitCall(input: CallAgentInput, limit: SharedRateLimit, at: number): AgentCallRecord {
  const message = `no call made: the API refused run ${limit.runId}'s call (${limit.status}); every task of this account waits until ${new Date(limit.until).toISOString()}`;
  return { ...limitedCall(input, { limitType: null, resetsAt: limit.until, blockedBy: null, message, seenAt: at, runId: limit.runId }, at), outcome: { kind: 'rateLimited', status: limit.status, message, sharedUntil: limit.until } };
}

/** Any actor system (XState exports only the generic type). */
export type AnyActorSystem = ActorSystem<any>;

/** What a drive's actors do: its work, and what the journal must do before each starts. */
export interface DriveWork {
  work: IterationWork;
  beforeStep?: (effect: StepEffect) => Promise<boolean>;
}

type InputOf<K extends keyof IterationWork> = IterationWork[K] extends Work<infer I, unknown> ? I : never;
type OutputOf<K extends keyof IterationWork> = IterationWork[K] extends Work<never, infer O> ? O : never;

/** Each work as the promise actor the machine invokes, started only once `beforeStep` allows (false: never). */
export function actorsOf(work: IterationWork, beforeStep?: (effect: StepEffect) => Promise<boolean>) {
  const drive: DriveWork = { work, beforeStep };
  return actorsFinding(() => drive);
}

/**
 * `actorsOf` for machines shared by many drives: each actor finds its drive's work by the actor system it runs
 * in (one system per drive's root actor; XState hands it to every promise actor).
 */
export function actorsFinding(driveOf: (system: AnyActorSystem) => DriveWork) {
  const actor = <K extends keyof IterationWork>(name: K) =>
    fromPromise<OutputOf<K>, InputOf<K>>(async ({ input, signal, system }) => {
      const { work, beforeStep } = driveOf(system);
      const w = work[name] as unknown as Work<InputOf<K>, OutputOf<K>>;
      // The journal failed: the actor never finishes; the drive stops it.
      if (beforeStep && !(await beforeStep(w.effect(input)))) return new Promise<OutputOf<K>>(() => {});
      return w.run({ input, signal });
    });
  return {
    buildContext: actor('buildContext'),
    generatePrompt: actor('generatePrompt'),
    callAgent: actor('callAgent'),
    validateResponse: actor('validateResponse'),
    scoreResponse: actor('scoreResponse'),
    decide: actor('decide'),
    persistIteration: actor('persistIteration'),
  };
}
