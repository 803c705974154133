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
    callAgent: fromPromise<AgentCallRecord, CallAgentInput>(async ({ input, signal }) =>
      deps.agent.call({
        ...input,
        signal,
        onProgress: deps.onAgentProgress ? (progress) => deps.onAgentProgress!(progress, input) : undefined,
      }),
    ),
    validateResponse: fromPromise<ValidationVerdict, ValidateInput>(async ({ input }) => judging.validate(input.call, input.task)),
    scoreResponse: fromPromise<ScoreOutput, ScoreInput>(async ({ input, signal }) => judging.score(input, signal)),
    decide: fromPromise<DecisionReport, DecideInput>(async ({ input }) => judging.decide(input)),
    persistIteration: fromPromise<void, IterationRecord>(async ({ input }) => deps.saveIteration(input)),
  };
}
