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
import type { Agent, AgentProgress } from '../agents/agent.js';
import type { ObraConfig } from '../config/schema.js';
import { ContextManager } from '../context/context-manager.js';
import type { AgentCallRecord, DecisionReport, IterationRecord, ValidationVerdict } from '../core/types.js';
import { DecisionEngine } from '../decision/decision-engine.js';
import { PromptGenerator } from '../prompt/prompt-generator.js';
import { runChecks } from '../scoring/checks.js';
import { ConfidenceScorer } from '../scoring/confidence-scorer.js';
import { QualityController } from '../scoring/quality-controller.js';
import { ResponseValidator } from '../validation/response-validator.js';

export interface ImplementationDeps {
  config: ObraConfig;
  agent: Agent;
  /** Saves a finished iteration (idempotently: a restored `persisting` may run it twice). */
  saveIteration: (record: IterationRecord) => void;
  onAgentProgress?: (progress: AgentProgress, input: CallAgentInput) => void;
  /** Runs the user's checks; replaced in tests. */
  checks?: typeof runChecks;
}

/**
 * The real actors behind the iteration machine's named stages. Each is a thin `fromPromise` around one
 * component, so the components stay plain classes that are tested on their own.
 */
export function iterationActors(deps: ImplementationDeps) {
  const { config } = deps;
  const contextManager = new ContextManager(config.context.max_chars);
  const prompts = new PromptGenerator();
  const validator = new ResponseValidator({ minAnswerChars: config.quality.min_answer_chars });
  const quality = new QualityController(config.quality.weights);
  const confidence = new ConfidenceScorer();
  const decisions = new DecisionEngine({
    proceedThreshold: config.decision.proceed_threshold,
    escalateThreshold: config.decision.escalate_threshold,
    minConfidence: config.decision.min_confidence,
    stuckAfter: config.decision.stuck_after,
    maxRetriesPerGoal: config.decision.max_retries_per_goal,
  });
  const checks = deps.checks ?? runChecks;

  return {
    buildContext: fromPromise<string, BuildContextInput>(async ({ input }) => contextManager.build(input)),
    generatePrompt: fromPromise<string, GeneratePromptInput>(async ({ input }) =>
      prompts.render({ context: input.context, iteration: input.index }),
    ),
    callAgent: fromPromise<AgentCallRecord, CallAgentInput>(async ({ input, signal }) =>
      deps.agent.call({
        ...input,
        signal,
        onProgress: deps.onAgentProgress ? (progress) => deps.onAgentProgress!(progress, input) : undefined,
      }),
    ),
    validateResponse: fromPromise<ValidationVerdict, ValidateInput>(async ({ input }) => validator.validate(input.call, input.task)),
    scoreResponse: fromPromise<ScoreOutput, ScoreInput>(async ({ input, signal }) => {
      // Checks judge the work in the directory, so they run after every real answer, even a flawed one.
      const checkResults =
        input.call.outcome.kind === 'answer' && input.task.checks.length
          ? await checks(input.task.checks, { cwd: input.task.workdir, timeoutMs: config.task.check_timeout * 1000, signal })
          : [];
      const q = quality.score({ task: input.task, call: input.call, validation: input.validation, checks: checkResults });
      const c = confidence.score({ validation: input.validation, quality: q, history: input.history, call: input.call });
      return { quality: q, confidence: c };
    }),
    decide: fromPromise<DecisionReport, DecideInput>(async ({ input }) => decisions.decide(input)),
    persistIteration: fromPromise<void, IterationRecord>(async ({ input }) => deps.saveIteration(input)),
  };
}
