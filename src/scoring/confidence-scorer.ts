import type { AgentCallRecord, ConfidenceReport, IterationSummary, QualityReport, ValidationVerdict } from '../core/types.js';
import { failureFingerprint } from '../../machines/summary.js';
import { round } from './quality-controller.js';

export interface ConfidenceWeights {
  validation: number;
  quality: number;
  history: number;
  agent: number;
}

/** Documented in the README (`confidence.weights`). */
export const DEFAULT_CONFIDENCE_WEIGHTS: ConfidenceWeights = { validation: 0.3, quality: 0.4, history: 0.2, agent: 0.1 };

export interface ConfidenceInput {
  validation: ValidationVerdict;
  quality: QualityReport;
  history: IterationSummary[];
  call: AgentCallRecord;
}

/**
 * How far to trust this iteration's result, in [0, 1], from four factors, each explained in one line:
 *  - validation: 1 when the answer is usable, else 0;
 *  - quality: the QualityController's score;
 *  - history: the same failure as last time lowers it, steady improvement raises it;
 *  - agent: the agent's own signals (an error result, a `done` claim the checks contradict, a turn limit).
 * The weighted mean is the score. Warnings from the evidence (a judge that did not answer) are listed too.
 */
export class ConfidenceScorer {
  constructor(private readonly weights: ConfidenceWeights = DEFAULT_CONFIDENCE_WEIGHTS) {}

  score({ validation, quality, history, call }: ConfidenceInput): ConfidenceReport {
    const explanation: string[] = [];
    const failing = quality.checks.filter((c) => c.exitCode !== 0);

    const v = validation.ok ? 1 : 0;
    explanation.push(`validation ${v}: ${validation.ok ? 'the answer is usable' : `failed (${validation.codes.join(', ')})`}`);

    const q = quality.score;
    explanation.push(`quality ${q.toFixed(2)}${quality.breakdown.judge !== undefined ? ` (LLM judge ${quality.breakdown.judge.toFixed(2)})` : ''}`);

    const { value: h, why } = historyFactor(validation, quality, history);
    explanation.push(`history ${h.toFixed(2)}: ${why}`);

    let a = 1;
    const agentNotes: string[] = [];
    if (call.outcome.kind !== 'answer') {
      a = 0;
      agentNotes.push(`no answer (${call.outcome.kind})`);
    } else {
      const result = call.outcome.result;
      if (result.is_error) {
        a = 0;
        agentNotes.push('the CLI reported an error');
      }
      if (result.subtype === 'error_max_turns') {
        a = Math.min(a, 0.3);
        agentNotes.push('the agent ran out of turns');
      }
      if (validation.claimsDone && failing.length) {
        a = Math.min(a, 0.3);
        agentNotes.push('the agent says done but checks fail');
      } else if (validation.claimsDone) agentNotes.push('the agent says the task is done');
      if (validation.codes.includes('question_only')) {
        a = Math.min(a, 0.4);
        agentNotes.push('the agent asked instead of acting');
      }
    }
    explanation.push(`agent ${a.toFixed(2)}: ${agentNotes.join('; ') || 'no warning signs'}`);

    // When the judge and the checks/heuristics disagree strongly, neither is worth full trust.
    let penalty = 0;
    const judge = quality.breakdown.judge;
    if (judge !== undefined && Math.abs(judge - heuristicScore(quality)) > 0.4) {
      penalty = 0.1;
      explanation.push(`-0.10: the LLM judge (${judge.toFixed(2)}) and the other evidence (${heuristicScore(quality).toFixed(2)}) disagree`);
    }
    for (const warning of quality.warnings) explanation.push(`warning: ${warning}`);

    const w = this.weights;
    const total = w.validation + w.quality + w.history + w.agent || 1;
    const score = Math.max(0, (v * w.validation + q * w.quality + h * w.history + a * w.agent) / total - penalty);
    return { score: round(score), explanation };
  }
}

function historyFactor(validation: ValidationVerdict, quality: QualityReport, history: IterationSummary[]): { value: number; why: string } {
  const last = history.at(-1);
  if (!last) return { value: 0.7, why: 'first iteration, no history yet' };
  const failing = quality.checks.filter((c) => c.exitCode !== 0);
  const fingerprint = failureFingerprint(failing, validation.ok ? [] : validation.codes);
  if (fingerprint && fingerprint === (last.failureFingerprint ?? '')) return { value: 0.2, why: 'the same failure as the previous iteration' };
  // Count the run of improving iterations: steady progress raises confidence more than one good step.
  let streak = 0;
  let previous = quality.score;
  for (let i = history.length - 1; i >= 0; i--) {
    if (previous > history[i]!.quality + 0.02) streak++;
    else break;
    previous = history[i]!.quality;
  }
  if (streak >= 1) return { value: Math.min(1, 0.85 + 0.05 * streak), why: `improving for ${streak} iteration(s): quality ${last.quality.toFixed(2)} → ${quality.score.toFixed(2)}` };
  if (quality.score < last.quality - 0.05) return { value: 0.4, why: `worse than before: quality ${last.quality.toFixed(2)} → ${quality.score.toFixed(2)}` };
  if (last.failureFingerprint && !fingerprint) return { value: 0.9, why: 'the previous failure is fixed' };
  return { value: 0.7, why: 'steady compared with the previous iteration' };
}

/** The quality score without the judge's share (the evidence the judge is compared with). */
function heuristicScore(quality: QualityReport): number {
  const { judge: _judge, ...rest } = quality.breakdown;
  const parts = Object.values(rest);
  return parts.length ? parts.reduce((a, b) => a + b, 0) / parts.length : quality.score;
}
