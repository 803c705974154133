import type { CheckResult, ConfidenceReport, Decision, DecisionReport, IterationSummary, QualityReport, TaskSpec, ValidationVerdict } from '../core/types.js';
import { excerpt, failureFingerprint } from './history.js';

export interface DecisionPolicy {
  /** Quality at or above: proceed (or done, when claimed and the checks pass). */
  proceedThreshold: number;
  /** Quality below: escalate. */
  escalateThreshold: number;
  /** Confidence below: clarify rather than proceed or accept. */
  minConfidence: number;
  /** The same answer / the same failure this many times in a row: stuck. */
  stuckAfter: number;
  /** Retries (or clarifications) in a row before escalating. */
  maxRetriesPerGoal: number;
  /** Pause for review every N iterations (null: never). */
  checkpointEvery?: number | null;
}

export const DEFAULT_DECISION_POLICY: DecisionPolicy = {
  proceedThreshold: 0.7,
  escalateThreshold: 0.5,
  minConfidence: 0.5,
  stuckAfter: 3,
  maxRetriesPerGoal: 2,
  checkpointEvery: null,
};

export interface DecisionInput {
  task: TaskSpec;
  /** The iteration's number (1-based); used for checkpoints. */
  index?: number;
  validation: ValidationVerdict;
  quality: QualityReport;
  confidence: ConfidenceReport;
  history: IterationSummary[];
}

/** The rules, in the order they are tried. The first that applies names itself in the report's `rule`. */
export const DECISION_RULES = [
  'stuck',
  'acceptedAsDone',
  'retriesExhausted',
  'unrecoverable',
  'validationFailed',
  'checksFailing',
  'lowQuality',
  'stillUnclear',
  'unclear',
  'checkpointDue',
  'progressingWithFailingChecks',
  'progressing',
] as const;
export type DecisionRule = (typeof DECISION_RULES)[number];

/** A policy outside what the rules can work with is a bug in the caller or a config that escaped validation. */
export class DecisionPolicyError extends Error {
  override readonly name = 'DecisionPolicyError';
}

/**
 * Picks what happens after an iteration: `done`, `proceed`, `clarify`, `retry`, `escalate` or `checkpoint`.
 * Each decision names the rule that chose it and carries the feedback for the next prompt, so "why did it
 * escalate?" has an answer in the record. The task machine routes on the decision with one named guard per
 * action (`decidedDone`, `decidedRetry`, ...).
 *
 * Unlike the original (validation + quality only, retries only by a human override), confidence takes part,
 * a retry with feedback is reachable on its own, and being stuck is detected instead of looping.
 */
export class DecisionEngine {
  private readonly policy: DecisionPolicy;

  constructor(policy: Partial<DecisionPolicy> = {}) {
    this.policy = { ...DEFAULT_DECISION_POLICY, ...policy };
    const p = this.policy;
    for (const key of ['proceedThreshold', 'escalateThreshold', 'minConfidence'] as const) {
      if (!(p[key] >= 0 && p[key] <= 1)) throw new DecisionPolicyError(`decision ${key} must be between 0 and 1, got ${p[key]}`);
    }
    if (p.escalateThreshold > p.proceedThreshold) {
      throw new DecisionPolicyError(`decision escalateThreshold (${p.escalateThreshold}) must not be above proceedThreshold (${p.proceedThreshold})`);
    }
    if (!Number.isInteger(p.stuckAfter) || p.stuckAfter < 2) throw new DecisionPolicyError(`decision stuckAfter must be a whole number of at least 2, got ${p.stuckAfter}`);
  }

  decide(input: DecisionInput): DecisionReport {
    const { validation, quality, confidence, history } = input;
    const p = this.policy;
    const failing = quality.checks.filter((c) => c.exitCode !== 0);
    const checksPass = failing.length === 0;
    const q = quality.score.toFixed(2);
    const c = confidence.score.toFixed(2);

    const stuck = stuckReason(input, p.stuckAfter);
    if (stuck) {
      return report('escalate', 'stuck', stuck, `You seem to be stuck: ${stuck}. Try a different approach.`);
    }

    if (validation.ok && checksPass && validation.claimsDone && quality.score >= p.proceedThreshold && confidence.score >= p.minConfidence) {
      const checks = quality.checks.length ? `all ${quality.checks.length} check(s) pass` : 'no checks configured';
      return report('done', 'acceptedAsDone', `the agent reports done, ${checks}, quality ${q} ≥ ${p.proceedThreshold}, confidence ${c} ≥ ${p.minConfidence}`, null);
    }

    // A broken answer, or a "done" the checks contradict: the same goal again, with the evidence as feedback.
    if (!validation.ok || (!checksPass && validation.claimsDone)) {
      const feedback = feedbackFor(validation, failing);
      const problems = shortProblems(validation, failing);
      const retriesSoFar = countTrailing(history, 'retry');
      if (retriesSoFar >= p.maxRetriesPerGoal) {
        return report('escalate', 'retriesExhausted', `still failing after ${retriesSoFar} retr${retriesSoFar === 1 ? 'y' : 'ies'}: ${problems}`, feedback);
      }
      if (validation.codes.some((code) => code === 'fatal' || code === 'validator_error')) {
        return report('escalate', 'unrecoverable', validation.reasons.join('; '), feedback);
      }
      return withCheckpoint(input, p, report('retry', validation.ok ? 'checksFailing' : 'validationFailed', problems, feedback));
    }

    if (quality.score < p.escalateThreshold) {
      return report('escalate', 'lowQuality', `quality ${q} < escalate_threshold ${p.escalateThreshold}${weakParts(quality)}`, null);
    }
    if (quality.score < p.proceedThreshold || confidence.score < p.minConfidence) {
      const why = quality.score < p.proceedThreshold
        ? `quality ${q} is between escalate_threshold ${p.escalateThreshold} and proceed_threshold ${p.proceedThreshold}${weakParts(quality)}`
        : `quality ${q} is fine but confidence ${c} < min_confidence ${p.minConfidence}`;
      const clarificationsSoFar = countTrailing(history, 'clarify');
      if (clarificationsSoFar >= p.maxRetriesPerGoal) {
        return report('escalate', 'stillUnclear', `still unclear after ${clarificationsSoFar} follow-up question(s): ${why}`, null);
      }
      const feedback =
        `Your last answer was unclear (${why}). In this same conversation: state precisely what you changed, ` +
        'how you verified it, and what is left; then continue the task.';
      return withCheckpoint(input, p, report('clarify', 'unclear', why, feedback));
    }

    // Work in progress: the checks may fail until the agent says it is done; show them, do not punish.
    if (!checksPass) {
      return withCheckpoint(
        input,
        p,
        report('proceed', 'progressingWithFailingChecks', `quality ${q} ≥ ${p.proceedThreshold}; the agent reports more work to do; ${failing.length} check(s) still fail`, feedbackFor(validation, failing, 'For your information, the acceptance checks do not pass yet.')),
      );
    }
    return withCheckpoint(input, p, report('proceed', 'progressing', `quality ${q} ≥ ${p.proceedThreshold}, confidence ${c}; the agent reports more work to do`, null));
  }
}

function report(decision: Decision, rule: DecisionRule, reason: string, feedback: string | null): DecisionReport {
  return { decision, rule, reason, feedback };
}

/** Every `checkpointEvery` iterations a continuing decision becomes a checkpoint; its feedback is kept for after. */
function withCheckpoint(input: DecisionInput, p: DecisionPolicy, decided: DecisionReport): DecisionReport {
  if (!p.checkpointEvery || !input.index || input.index % p.checkpointEvery !== 0) return decided;
  return {
    decision: 'checkpoint',
    rule: 'checkpointDue',
    reason: `checkpoint every ${p.checkpointEvery} iteration(s): paused for review after iteration ${input.index} (then: ${decided.decision}, ${decided.rule} — ${decided.reason})`,
    feedback: decided.feedback,
  };
}

function countTrailing(history: IterationSummary[], decision: Decision): number {
  let n = 0;
  for (let i = history.length - 1; i >= 0 && history[i]!.decision === decision; i--) n++;
  return n;
}

/**
 * OpenHands-style stuck detection over the last iterations and this one: the same answer `stuckAfter` times in
 * a row, the same failure (same checks failing with the same output, or the same validation problem)
 * `stuckAfter` times in a row, or an A/B alternation over the last four.
 */
export function stuckReason(input: DecisionInput, stuckAfter: number): string | null {
  const { validation, quality, history } = input;
  const failing = quality.checks.filter((c) => c.exitCode !== 0);
  const answer = excerpt(validation.answer ?? '');
  const fingerprint = failureFingerprint(failing, validation.ok ? [] : validation.codes);
  const answers = [...history.map((s) => s.answerExcerpt), answer];
  const fingerprints = [...history.map((s) => s.failureFingerprint ?? ''), fingerprint];

  const lastN = <T>(list: T[]) => list.slice(-stuckAfter);
  const allSame = <T>(list: T[]) => list.length === stuckAfter && list.every((x) => x === list[0]);

  if (answer && allSame(lastN(answers))) return `the agent gave the same answer ${stuckAfter} times in a row`;
  if (fingerprint && allSame(lastN(fingerprints))) {
    const what = failing.length ? `check(s) ${failing.map((c) => `\`${c.command}\``).join(', ')} failed the same way` : `the same validation problem (${validation.codes.join(', ')}) came back`;
    return `${what} ${stuckAfter} times in a row`;
  }
  const alternates = (list: string[]) => {
    const [a, b, c, d] = list.slice(-4);
    return list.length >= 4 && Boolean(a) && Boolean(b) && a === c && b === d && a !== b;
  };
  if (answer && alternates(answers)) return 'the agent alternates between two answers (A, B, A, B)';
  if (fingerprint && alternates(fingerprints)) return 'the run alternates between two failures (A, B, A, B)';
  return null;
}

function feedbackFor(validation: ValidationVerdict, failing: CheckResult[], lead?: string): string {
  const parts: string[] = [];
  if (lead) parts.push(lead);
  if (!validation.ok) parts.push(`Your last answer had problems: ${validation.reasons.join('; ')}.`);
  if (validation.claimsDone && failing.length) parts.push('You said the task is done, but the acceptance checks say otherwise.');
  for (const check of failing) {
    const status = check.exitCode === null ? (check.timedOut ? 'timed out' : 'did not finish') : `exit ${check.exitCode}`;
    parts.push(`The check \`${check.command}\` failed (${status}). Its output ended with:\n${check.outputTail.slice(-800)}`);
  }
  if (!lead) parts.push('Fix these, then answer again.');
  return parts.join('\n\n');
}

function shortProblems(validation: ValidationVerdict, failing: CheckResult[]): string {
  return [...validation.reasons, ...failing.map((c) => `check \`${c.command}\` failed (${c.exitCode === null ? 'no exit code' : `exit ${c.exitCode}`})`)].join('; ');
}

function weakParts(quality: QualityReport): string {
  const weak = Object.entries(quality.breakdown).filter(([, v]) => v < 0.6).map(([k, v]) => `${k} ${v.toFixed(2)}`);
  return weak.length ? ` (weak: ${weak.join(', ')})` : '';
}
