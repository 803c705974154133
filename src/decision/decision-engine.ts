import type { ConfidenceReport, DecisionReport, IterationSummary, QualityReport, TaskSpec, ValidationVerdict } from '../core/types.js';

export interface DecisionPolicy {
  proceedThreshold: number;
  escalateThreshold: number;
  minConfidence: number;
  stuckAfter: number;
  maxRetriesPerGoal: number;
}

export interface DecisionInput {
  task: TaskSpec;
  validation: ValidationVerdict;
  quality: QualityReport;
  confidence: ConfidenceReport;
  history: IterationSummary[];
}

/**
 * Picks what happens after an iteration. The rules are tried in order and the first that applies names
 * itself in `rule`, so every decision can be explained afterwards ("why did it escalate?").
 *
 * Unlike the original (validation + quality only, retries only by a human), confidence takes part, a retry
 * with feedback is reachable on its own, and being stuck is detected instead of looping.
 */
export class DecisionEngine {
  constructor(private readonly policy: DecisionPolicy) {}

  decide(input: DecisionInput): DecisionReport {
    const { validation, quality, confidence, history } = input;
    const p = this.policy;
    const failing = quality.checks.filter((c) => c.exitCode !== 0);
    const checksPass = failing.length === 0;
    const retriesSoFar = countTrailing(history, 'retry');

    const stuck = stuckReason(input, p.stuckAfter);
    if (stuck) return { decision: 'escalate', rule: 'stuck', reason: stuck, feedback: null };

    if (validation.ok && checksPass && validation.claimsDone && quality.score >= p.proceedThreshold && confidence.score >= p.minConfidence) {
      return { decision: 'done', rule: 'acceptedAsDone', reason: `the agent reports done, ${quality.checks.length ? 'all checks pass' : 'no checks configured'}, quality ${quality.score.toFixed(2)} ≥ ${p.proceedThreshold}`, feedback: null };
    }

    if (!validation.ok || !checksPass) {
      const feedback = feedbackFor(validation, failing);
      if (retriesSoFar >= p.maxRetriesPerGoal) {
        return { decision: 'escalate', rule: 'retriesExhausted', reason: `still failing after ${retriesSoFar} retries: ${shortProblems(validation, failing)}`, feedback };
      }
      if (!validation.ok && quality.score < p.escalateThreshold && validation.codes.some((c) => c === 'fatal')) {
        return { decision: 'escalate', rule: 'unrecoverable', reason: validation.reasons.join('; '), feedback };
      }
      return { decision: 'retry', rule: validation.ok ? 'checksFailing' : 'validationFailed', reason: shortProblems(validation, failing), feedback };
    }

    if (quality.score < p.escalateThreshold) {
      return { decision: 'escalate', rule: 'lowQuality', reason: `quality ${quality.score.toFixed(2)} < ${p.escalateThreshold}`, feedback: null };
    }
    if (quality.score < p.proceedThreshold || confidence.score < p.minConfidence) {
      return {
        decision: 'clarify',
        rule: 'unclear',
        reason: `quality ${quality.score.toFixed(2)} / confidence ${confidence.score.toFixed(2)} between the thresholds`,
        feedback: 'Your last answer was unclear. State precisely what you changed, how you verified it, and what is left; then continue.',
      };
    }
    if (validation.claimsDone) {
      // Claims done, checks pass, quality fine, but confidence too low was handled above; reaching here means
      // the claim was made with proceed-level quality: accept.
      return { decision: 'done', rule: 'acceptedAsDone', reason: `quality ${quality.score.toFixed(2)}`, feedback: null };
    }
    return { decision: 'proceed', rule: 'progressing', reason: `quality ${quality.score.toFixed(2)} ≥ ${p.proceedThreshold}; the agent reports more work to do`, feedback: null };
  }
}

function countTrailing(history: IterationSummary[], decision: string): number {
  let n = 0;
  for (let i = history.length - 1; i >= 0 && history[i]!.decision === decision; i--) n++;
  return n;
}

/** OpenHands-style stuck detection: the same answer or failure N times, or an A/B alternation. */
function stuckReason(input: DecisionInput, stuckAfter: number): string | null {
  const { validation, quality, history } = input;
  const failing = quality.checks.filter((c) => c.exitCode !== 0).map((c) => c.command).sort().join(', ');
  const answer = (validation.answer ?? '').slice(0, 400);
  const recent = history.slice(-(stuckAfter - 1));
  if (recent.length < stuckAfter - 1) return null;
  if (answer && recent.every((s) => s.answerExcerpt.replace(/…$/, '') === answer)) {
    return `the agent gave the same answer ${stuckAfter} times in a row`;
  }
  if (failing && recent.every((s) => [...s.failingChecks].sort().join(', ') === failing)) {
    return `the same checks failed ${stuckAfter} times in a row: ${failing}`;
  }
  const codes = validation.codes.join(',');
  if (codes && recent.every((s) => s.validationCodes.join(',') === codes)) {
    return `the same validation problem ${stuckAfter} times in a row: ${codes}`;
  }
  const last4 = [...history.slice(-3).map((s) => s.answerExcerpt.replace(/…$/, '')), answer];
  if (last4.length === 4 && last4[0] && last4[0] === last4[2] && last4[1] === last4[3] && last4[0] !== last4[1]) {
    return 'the agent alternates between two answers';
  }
  return null;
}

function feedbackFor(validation: ValidationVerdict, failing: { command: string; exitCode: number | null; outputTail: string }[]): string {
  const parts: string[] = [];
  if (!validation.ok) parts.push(`Your last answer had problems: ${validation.reasons.join('; ')}.`);
  for (const check of failing) {
    parts.push(`The check \`${check.command}\` failed (exit ${check.exitCode ?? 'timeout'}). Its output ended with:\n${check.outputTail.slice(-800)}`);
  }
  parts.push('Fix these, then answer again.');
  return parts.join('\n\n');
}

function shortProblems(validation: ValidationVerdict, failing: { command: string }[]): string {
  return [...validation.reasons, ...failing.map((c) => `check \`${c.command}\` failed`)].join('; ');
}
