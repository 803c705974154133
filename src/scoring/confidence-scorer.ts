import type { AgentCallRecord, ConfidenceReport, IterationSummary, QualityReport, ValidationVerdict } from '../core/types.js';
import { round } from './quality-controller.js';

export interface ConfidenceWeights {
  validation: number;
  quality: number;
  history: number;
  agent: number;
}

export const DEFAULT_CONFIDENCE_WEIGHTS: ConfidenceWeights = { validation: 0.3, quality: 0.4, history: 0.2, agent: 0.1 };

/**
 * How far to trust this iteration's result: validation, quality, the task's history (the same failure again
 * lowers it, steady progress raises it) and the agent's own signals, each explained in one line.
 */
export class ConfidenceScorer {
  constructor(private readonly weights: ConfidenceWeights = DEFAULT_CONFIDENCE_WEIGHTS) {}

  score(input: { validation: ValidationVerdict; quality: QualityReport; history: IterationSummary[]; call: AgentCallRecord }): ConfidenceReport {
    const { validation, quality, history, call } = input;
    const explanation: string[] = [];

    const v = validation.ok ? 1 : 0;
    explanation.push(validation.ok ? 'validation passed' : `validation failed: ${validation.codes.join(', ')}`);
    explanation.push(`quality ${quality.score.toFixed(2)}`);

    let h = 0.7;
    const last = history.at(-1);
    if (!last) explanation.push('first iteration: no history yet');
    else {
      const failing = quality.checks.filter((c) => c.exitCode !== 0).map((c) => c.command).sort().join('|');
      const sameFailure = (failing && failing === [...last.failingChecks].sort().join('|')) ||
        (!validation.ok && validation.codes.join('|') === last.validationCodes.join('|'));
      if (sameFailure) {
        h = 0.2;
        explanation.push('the same failure as the previous iteration');
      } else if (quality.score > last.quality + 0.05) {
        h = 1;
        explanation.push(`improving: quality ${last.quality.toFixed(2)} → ${quality.score.toFixed(2)}`);
      } else if (quality.score < last.quality - 0.05) {
        h = 0.4;
        explanation.push(`worse than before: quality ${last.quality.toFixed(2)} → ${quality.score.toFixed(2)}`);
      } else explanation.push('steady compared with the previous iteration');
    }

    let a = 1;
    if (call.outcome.kind === 'answer') {
      if (call.outcome.result.is_error) a = 0;
      if (validation.claimsDone && quality.checks.some((c) => c.exitCode !== 0)) {
        a = Math.min(a, 0.3);
        explanation.push('the agent says done but checks fail');
      }
    } else a = 0;

    const w = this.weights;
    const score = (v * w.validation + quality.score * w.quality + h * w.history + a * w.agent) / (w.validation + w.quality + w.history + w.agent || 1);
    return { score: round(score), explanation };
  }
}
