import { fromPromise } from 'xstate';
import type {
  BuildContextInput,
  CallAgentInput,
  DecideInput,
  GeneratePromptInput,
  ScoreInput,
  ScoreOutput,
  ValidateInput,
} from '../../machines/iteration.machine.js';
import type { AccountLimits } from '../agents/account-limits.js';
import type { Agent, AgentProgress } from '../agents/agent.js';
import { checkRules } from '../agents/permissions.js';
import type { ObraConfig } from '../config/schema.js';
import { ContextManager } from '../context/context-manager.js';
import type { AgentCallRecord, DecisionReport, IterationRecord, ValidationVerdict } from '../core/types.js';
import { PromptGenerator } from '../prompt/prompt-generator.js';
import { runChecks } from '../scoring/checks.js';
import { createJudging } from '../scoring/judging.js';

export interface ImplementationDeps {
  config: ObraConfig;
  agent: Agent;
  /** Saves a finished iteration (idempotently: a restored `persisting` may run it twice). */
  saveIteration: (record: IterationRecord) => void;
  onAgentProgress?: (progress: AgentProgress, input: CallAgentInput) => void;
  /** Runs the user's checks; replaced in tests. */
  checks?: typeof runChecks;
  /** The account's usage limit, shared by the tasks of a store: no call starts while it is in force. */
  limits?: AccountLimits;
  /** The engine's clock (the limit's reset is compared with it). */
  now?: () => number;
}

/**
 * The real actors behind the iteration machine's named stages. Each is a thin `fromPromise` around one
 * component, so the components stay plain classes that are tested on their own.
 */
export function iterationActors(deps: ImplementationDeps) {
  const { config } = deps;
  const contextManager = new ContextManager({ maxChars: config.context.max_chars, historyWindow: config.context.history_window });
  const prompts = new PromptGenerator();
  // Validation, checks, quality (with the optional LLM judge), confidence and the decision: src/scoring/judging.ts.
  const judging = createJudging(config, { runChecks: deps.checks });

  return {
    buildContext: fromPromise<string, BuildContextInput>(async ({ input }) => contextManager.build(input)),
    generatePrompt: fromPromise<string, GeneratePromptInput>(async ({ input }) =>
      prompts.render({ context: input.context, iteration: input.index }),
    ),
    callAgent: fromPromise<AgentCallRecord, CallAgentInput>(async ({ input, signal }) => {
      const now = deps.now ?? Date.now;
      const limit = deps.limits?.current(now());
      if (limit) return limitedCall(input, limit, now());
      const { checks, ...request } = input;
      const record = await deps.agent.call({
        ...request,
        // The task's own checks are allowed as Bash tools (agent.local.allow_checks), with what a person granted.
        allowedTools: [...(config.agent.local.allow_checks ? checkRules(checks ?? []) : []), ...(input.allowedTools ?? [])],
        signal,
        onProgress: deps.onAgentProgress ? (progress) => deps.onAgentProgress!(progress, input) : undefined,
      });
      if (record.outcome.kind === 'usageLimit') deps.limits?.note(record.outcome, input.runId, now());
      return record;
    }),
    validateResponse: fromPromise<ValidationVerdict, ValidateInput>(async ({ input }) => judging.validate(input.call, input.task)),
    scoreResponse: fromPromise<ScoreOutput, ScoreInput>(async ({ input, signal }) => judging.score(input, signal)),
    decide: fromPromise<DecisionReport, DecideInput>(async ({ input }) => judging.decide(input)),
    persistIteration: fromPromise<void, IterationRecord>(async ({ input }) => deps.saveIteration(input)),
  };
}

/** The call not made because the account's usage limit is in force: the iteration is suspended like a refused one. */
function limitedCall(input: CallAgentInput, limit: NonNullable<ReturnType<AccountLimits['current']>>, at: number): AgentCallRecord {
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
