import type { DecideInput } from '../../machines/iteration.machine.js';
import type { ObraConfig } from '../config/schema.js';
import type { AgentCallRecord, ConfidenceReport, DecisionReport, IterationSummary, QualityReport, TaskSpec, ValidationVerdict } from '../core/types.js';
import { DecisionEngine } from '../decision/decision-engine.js';
import { ResponseValidator } from '../validation/response-validator.js';
import { runChecks } from './checks.js';
import { runConflictGate } from './conflict-gate.js';
import { ConfidenceScorer } from './confidence-scorer.js';
import { LlmJudge } from './llm-judge.js';
import { QualityController } from './quality-controller.js';

export interface JudgingDeps {
  /** Replaces the check runner (tests). */
  runChecks?: typeof runChecks;
  /** Replaces `fetch` for the LLM judge (tests). */
  fetch?: typeof fetch;
}

/**
 * The judging half of an iteration, built from the config: validate → (checks, quality, confidence) → decide.
 * `src/engine/implementations.ts` wraps each method in the iteration machine's named actor.
 */
export function createJudging(config: ObraConfig, deps: JudgingDeps = {}) {
  const validator = new ResponseValidator({ minAnswerChars: config.quality.min_answer_chars });
  const judgeConfig = config.quality.judge;
  const quality = new QualityController({
    weights: config.quality.weights,
    judge: judgeConfig.enabled ? { judge: new LlmJudge(judgeConfig, deps.fetch), weight: judgeConfig.weight } : null,
  });
  const confidence = new ConfidenceScorer(config.confidence.weights);
  const decisions = new DecisionEngine({
    proceedThreshold: config.decision.proceed_threshold,
    escalateThreshold: config.decision.escalate_threshold,
    minConfidence: config.decision.min_confidence,
    stuckAfter: config.decision.stuck_after,
    maxRetriesPerGoal: config.decision.max_retries_per_goal,
    checkpointEvery: config.decision.checkpoint_every,
  });
  const checks = deps.runChecks ?? runChecks;

  return {
    validate: (call: AgentCallRecord, task: TaskSpec): ValidationVerdict => validator.validate(call, task),

    async score(
      input: { task: TaskSpec; call: AgentCallRecord; validation: ValidationVerdict; history: IterationSummary[] },
      signal?: AbortSignal,
    ): Promise<{ quality: QualityReport; confidence: ConfidenceReport }> {
      // Checks judge the work in the directory, so they run after every real answer, even a flawed one.
      const checkResults =
        input.call.outcome.kind === 'answer' && input.task.checks.length
          ? await checks(input.task.checks, {
              cwd: input.task.workdir,
              timeoutMs: config.task.check_timeout * 1000,
              tailChars: config.task.check_tail_chars,
              maxOutputBytes: config.task.check_max_output_bytes,
              signal,
            })
          : [];
      // A conflict's resolution: Obra's own gate, after the user's checks (see conflict-gate.ts).
      if (input.call.outcome.kind === 'answer' && input.task.conflictGate && !signal?.aborted) checkResults.push(await runConflictGate(input.task.workdir, input.task.conflictGate));
      const q = await quality.assess({ task: input.task, call: input.call, validation: input.validation, checks: checkResults }, signal);
      const c = confidence.score({ validation: input.validation, quality: q, history: input.history, call: input.call });
      return { quality: q, confidence: c };
    },

    decide: (input: DecideInput): DecisionReport => decisions.decide(input),
  };
}
export type Judging = ReturnType<typeof createJudging>;
