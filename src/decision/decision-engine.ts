import type { CheckResult, ConfidenceReport, Decision, DecisionReport, IterationSummary, PermissionDenial, QualityReport, TaskSpec, ValidationVerdict } from '../core/types.js';
import { allowFlags, describeDenials } from '../agents/permissions.js';
import { excerpt, failureFingerprint } from '../../machines/summary.js';
import { CONFLICT_GATE_CHECK } from '../scoring/conflict-gate.js';

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
  /** Tool uses the agent was refused during the call (absent: none). */
  denials?: PermissionDenial[];
}

/** The rules, in the order they are tried. The first that applies names itself in the report's `rule`. */
export const DECISION_RULES = [
  'acceptedAsDone',
  'permissionDenied',
  'conflictMarkersLeft',
  'finishedWithoutStatus',
  'stuck',
  'retriesExhausted',
  'unrecoverable',
  'validationFailed',
  'checksFailing',
  'statusMissing',
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

    // The agent says it is done and the evidence agrees: done, even if earlier answers looked alike.
    if (validation.ok && checksPass && validation.claimsDone && quality.score >= p.proceedThreshold && confidence.score >= p.minConfidence) {
      const checks = quality.checks.length ? `all ${quality.checks.length} check(s) pass` : 'no checks configured';
      return report('done', 'acceptedAsDone', `the agent reports done, ${checks}, quality ${q} ≥ ${p.proceedThreshold}, confidence ${c} ≥ ${p.minConfidence}`, null);
    }

    // Headless mode cannot ask for a permission: the CLI refused a tool use the agent needed. A person decides.
    const denials = input.denials ?? [];
    if (denials.length) {
      const n = denials.length;
      const reason =
        `the agent was refused ${n} tool use${n === 1 ? '' : 's'} it asked for: ${describeDenials(denials)} — ` +
        `allow ${n === 1 ? 'it' : 'them'} with \`obra answer <runId> ${allowFlags(denials)}\`, or answer with what to do instead`;
      return report('escalate', 'permissionDenied', reason, `Claude Code refused these tool uses (no permission rule allowed them): ${describeDenials(denials)}.`);
    }

    // A conflict's resolution that says it is finished with conflict markers left: never done, and not retried
    // blindly either — a person looks at the files (Obra's gate, see src/scoring/conflict-gate.ts).
    const gate = failing.find((check) => check.command === CONFLICT_GATE_CHECK);
    if (gate && (validation.claimsDone || (noStatusLine(validation) && saysFinished(validation.answer)))) {
      if (!gate.paths?.length) {
        // Not markers: the merge itself is gone (see conflict-gate.ts).
        const reason = `the resolution says it is done, but ${gate.outputTail}; or answer with what to do (\`obra answer <runId> "..."\`)`;
        return report('escalate', 'conflictMarkersLeft', reason, `${gate.outputTail}.`);
      }
      const files = gate.paths.join(', ');
      const reason =
        `the resolution says it is done, but ${gate.outputTail} — ` +
        `it can be done only without them: answer with how to resolve ${files} (\`obra answer <runId> "..."\`), or edit them in ${input.task.workdir} yourself and answer "go on"`;
      return report('escalate', 'conflictMarkersLeft', reason, `Conflict markers are still in ${files}. ${gate.outputTail}. Resolve every conflict: leave no line of <<<<<<<, ======= or >>>>>>> in any file.`);
    }

    // No status line, but the user's own checks all pass and the answer says in words that the work is finished.
    if (validation.ok && checksPass && quality.checks.length > 0 && noStatusLine(validation) && saysFinished(validation.answer) && quality.score >= p.proceedThreshold) {
      return report('done', 'finishedWithoutStatus', `the answer has no STATUS line but says the task is finished, and all ${quality.checks.length} check(s) pass (quality ${q})`, null);
    }

    const stuck = stuckReason(input, p.stuckAfter);
    if (stuck) {
      return report('escalate', 'stuck', stuck, `You seem to be stuck: ${stuck}. Try a different approach.`);
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

    // A usable answer without a status line: ask for it plainly, once, in the same session. Asked already and
    // still none: read as CONTINUE (the rules below), and say so.
    const statusNote = noStatusLine(validation) ? ' (no STATUS line again: read as CONTINUE)' : '';
    if (noStatusLine(validation) && history.at(-1)?.rule !== 'statusMissing') {
      const info = failing.length ? ` For your information, ${failing.length} acceptance check(s) do not pass yet: ${failing.map((f) => `\`${f.command}\``).join(', ')}.` : '';
      return withCheckpoint(
        input,
        p,
        report(
          'clarify',
          'statusMissing',
          'the answer has no STATUS line, so it does not say whether the task is finished',
          'Your last answer did not end with a status line, so it is not clear whether the task is finished. ' +
            'Reply with one line: `STATUS: DONE` if the whole task is complete and verified, or `STATUS: CONTINUE` followed by what is left. ' +
            `Do not redo work that is already done.${info}`,
        ),
      );
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
      return withCheckpoint(input, p, report('clarify', 'unclear', why + statusNote, feedback));
    }

    // Work in progress: the checks may fail until the agent says it is done; show them, do not punish.
    if (!checksPass) {
      return withCheckpoint(
        input,
        p,
        report('proceed', 'progressingWithFailingChecks', `quality ${q} ≥ ${p.proceedThreshold}; the agent reports more work to do; ${failing.length} check(s) still fail${statusNote}`, feedbackFor(validation, failing, 'For your information, the acceptance checks do not pass yet.')),
      );
    }
    return withCheckpoint(input, p, report('proceed', 'progressing', `quality ${q} ≥ ${p.proceedThreshold}, confidence ${c}; the agent reports more work to do${statusNote}`, null));
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

  const sameFailure = Boolean(fingerprint) && allSame(lastN(fingerprints));
  // A call that failed is named for what it is ("the agent crashed 3 times in a row", "API error 500 on 3 calls
  // in a row"), even when its text repeats too.
  if (sameFailure && !failing.length && validation.codes.some((code) => CALL_FAILURES.has(code))) return repeatedProblem(validation, stuckAfter);
  if (answer && allSame(lastN(answers))) return `the agent gave the same answer ${stuckAfter} times in a row`;
  if (sameFailure) {
    if (failing.length) return `check(s) ${failing.map((c) => `\`${c.command}\``).join(', ')} failed the same way ${stuckAfter} times in a row`;
    return repeatedProblem(validation, stuckAfter);
  }
  const alternates = (list: string[]) => {
    const [a, b, c, d] = list.slice(-4);
    return list.length >= 4 && Boolean(a) && Boolean(b) && a === c && b === d && a !== b;
  };
  if (answer && alternates(answers)) return 'the agent alternates between two answers (A, B, A, B)';
  if (fingerprint && alternates(fingerprints)) return 'the run alternates between two failures (A, B, A, B)';
  return null;
}

/** Validation codes that say the call itself failed (not what the agent wrote). */
const CALL_FAILURES = new Set(['crashed', 'timeout', 'malformed', 'fatal', 'is_error', 'empty']);

/** What a validation problem that came back `n` times in a row was, in words. */
function repeatedProblem(validation: ValidationVerdict, n: number): string {
  const codes = validation.codes;
  const first = (validation.reasons[0] ?? '').replace(/^[^:]*:\s*/, '');
  const detail = first ? ` (last: ${first.length > 160 ? `${first.slice(0, 159)}…` : first})` : '';
  if (codes.includes('crashed')) return `the agent crashed ${n} times in a row${detail}`;
  if (codes.includes('timeout')) return `the agent call timed out ${n} times in a row${detail}`;
  if (codes.includes('malformed')) return `the agent printed no usable result ${n} times in a row${detail}`;
  if (codes.includes('fatal')) return `the agent could not run ${n} times in a row${detail}`;
  if (codes.includes('is_error')) {
    const status = validation.apiErrorStatus;
    return status ? `API error ${status} on ${n} calls in a row${detail}` : `the CLI reported an error on ${n} calls in a row${detail}`;
  }
  if (codes.includes('empty')) return `the agent answered nothing ${n} times in a row`;
  return `the same validation problem (${codes.join(', ')}) came back ${n} times in a row${detail}`;
}

/** The answer has no status line (verdicts from before the field existed say nothing, and are not counted). */
const noStatusLine = (validation: ValidationVerdict) => validation.ok && validation.status === null;

/** The answer says in words that the work is finished ("the task is complete", "I have finished ..."). */
const FINISHED_WORDS =
  /\b(?:(?:task|work|change|implementation|everything|all)\b[^.\n]{0,40}\b(?:is|are|has been|have been)\s+(?:now\s+)?(?:complete|completed|done|finished)|I(?:'ve| have)\s+(?:now\s+)?(?:completed|finished)\s+(?:the|this|all)\b)/i;
function saysFinished(answer: string | null): boolean {
  return Boolean(answer && FINISHED_WORDS.test(answer));
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
