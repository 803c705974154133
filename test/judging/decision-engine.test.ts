import { describe, expect, it } from 'vitest';
import type { IterationSummary, QualityReport } from '../../src/core/types.js';
import { DecisionEngine, DecisionPolicyError, stuckReason } from '../../src/decision/decision-engine.js';
import { failureFingerprint, normaliseOutput } from '../../machines/summary.js';
import { check, task, verdict } from './helpers.js';

const quality = (score: number, checks: QualityReport['checks'] = []): QualityReport => ({
  score,
  breakdown: { syntax: 1, requirements: score, code_quality: score, testing: 1 },
  checks,
  warnings: [],
  notes: [],
});
const confidence = (score: number) => ({ score, explanation: [] });
const summary = (extra: Partial<IterationSummary> = {}): IterationSummary => ({
  index: 1,
  decision: 'proceed',
  quality: 0.8,
  confidence: 0.8,
  answerExcerpt: 'something else',
  feedback: null,
  failingChecks: [],
  validationCodes: [],
  failureFingerprint: '',
  ...extra,
});
const engine = new DecisionEngine();
const decide = (input: Partial<Parameters<DecisionEngine['decide']>[0]>, e = engine) =>
  e.decide({ task: task(), index: 1, validation: verdict(), quality: quality(0.85), confidence: confidence(0.8), history: [], ...input });

describe('DecisionEngine rules (defaults: proceed ≥ 0.70, escalate < 0.50, min confidence 0.50)', () => {
  it('done: valid, checks pass, quality and confidence high enough, and the agent says so', () => {
    const d = decide({ validation: verdict({ claimsDone: true }), quality: quality(0.85, [check('npm test', 0)]) });
    expect(d).toMatchObject({ decision: 'done', rule: 'acceptedAsDone', feedback: null });
    expect(d.reason).toBe('the agent reports done, all 1 check(s) pass, quality 0.85 ≥ 0.7, confidence 0.80 ≥ 0.5');
  });

  it('proceed: good work the agent says is not finished', () => {
    expect(decide({})).toMatchObject({ decision: 'proceed', rule: 'progressing', feedback: null });
  });

  it('proceed with failing checks while the agent is still working: the output is passed on, not punished', () => {
    const d = decide({ quality: quality(0.8, [check('npm test', 1, '1 failing')]) });
    expect(d).toMatchObject({ decision: 'proceed', rule: 'progressingWithFailingChecks' });
    expect(d.feedback).toContain('For your information, the acceptance checks do not pass yet.');
    expect(d.feedback).toContain('1 failing');
  });

  it('retry with feedback: a "done" the checks contradict', () => {
    const d = decide({ validation: verdict({ claimsDone: true }), quality: quality(0.8, [check('npm test', 1, 'AssertionError: expected 2')]) });
    expect(d).toMatchObject({ decision: 'retry', rule: 'checksFailing', reason: 'check `npm test` failed (exit 1)' });
    expect(d.feedback).toContain('You said the task is done, but the acceptance checks say otherwise.');
    expect(d.feedback).toContain('AssertionError: expected 2');
  });

  it('retry with feedback: an answer the validator rejects', () => {
    const d = decide({ validation: verdict({ ok: false, codes: ['is_error'], reasons: ['the CLI reported an error'] }), quality: quality(0.3) });
    expect(d).toMatchObject({ decision: 'retry', rule: 'validationFailed' });
    expect(d.feedback).toContain('Your last answer had problems: the CLI reported an error.');
  });

  it('retries are limited: after max_retries_per_goal in a row, escalate', () => {
    const history = [summary({ decision: 'retry', answerExcerpt: 'a' }), summary({ decision: 'retry', answerExcerpt: 'b' })];
    const d = decide({ validation: verdict({ ok: false, codes: ['too_short'], reasons: ['too short'], answer: 'c' }), history });
    expect(d).toMatchObject({ decision: 'escalate', rule: 'retriesExhausted', reason: 'still failing after 2 retries: too short' });
    expect(decide({ validation: verdict({ ok: false, codes: ['too_short'], reasons: ['too short'], answer: 'c' }), history: history.slice(1) }).decision).toBe('retry');
  });

  it('escalate: quality below the escalate threshold', () => {
    const d = decide({ quality: quality(0.4) });
    expect(d).toMatchObject({ decision: 'escalate', rule: 'lowQuality' });
    expect(d.reason).toMatch(/^quality 0\.40 < escalate_threshold 0\.5 \(weak: requirements 0\.40, code_quality 0\.40\)$/);
  });

  it('clarify: quality between the thresholds, or confidence below its minimum; then escalate if it stays unclear', () => {
    expect(decide({ quality: quality(0.6) })).toMatchObject({ decision: 'clarify', rule: 'unclear' });
    const lowConfidence = decide({ validation: verdict({ claimsDone: true }), confidence: confidence(0.3) });
    expect(lowConfidence).toMatchObject({ decision: 'clarify', reason: 'quality 0.85 is fine but confidence 0.30 < min_confidence 0.5' });
    expect(lowConfidence.feedback).toContain('In this same conversation');
    const history = [summary({ decision: 'clarify', answerExcerpt: 'x' }), summary({ decision: 'clarify', answerExcerpt: 'y' })];
    expect(decide({ quality: quality(0.6), history })).toMatchObject({ decision: 'escalate', rule: 'stillUnclear' });
  });

  it('every threshold comes from the policy', () => {
    const strict = new DecisionEngine({ proceedThreshold: 0.9, escalateThreshold: 0.2, minConfidence: 0.1 });
    expect(decide({ quality: quality(0.85) }, strict).decision).toBe('clarify');
    expect(decide({ quality: quality(0.4) }, strict).decision).toBe('clarify');
    expect(decide({ quality: quality(0.1) }, strict).decision).toBe('escalate');
    expect(decide({ quality: quality(0.95) }, strict).decision).toBe('proceed');
  });

  it('checkpoint: every N iterations a continuing decision pauses for review, keeping its feedback', () => {
    const e = new DecisionEngine({ checkpointEvery: 3 });
    expect(decide({ index: 2 }, e).decision).toBe('proceed');
    const d = decide({ index: 3, validation: verdict({ ok: false, codes: ['empty'], reasons: ['the answer is empty'], answer: '' }) }, e);
    expect(d).toMatchObject({ decision: 'checkpoint', rule: 'checkpointDue' });
    expect(d.reason).toMatch(/then: retry, validationFailed/);
    expect(d.feedback).toContain('the answer is empty');
    // A finished task is not held back by a checkpoint.
    expect(decide({ index: 3, validation: verdict({ claimsDone: true }) }, e).decision).toBe('done');
  });

  it('refuses a policy outside what the rules can work with', () => {
    expect(() => new DecisionEngine({ proceedThreshold: 1.5 })).toThrow(DecisionPolicyError);
    expect(() => new DecisionEngine({ proceedThreshold: 1.5 })).toThrow('decision proceedThreshold must be between 0 and 1, got 1.5');
    expect(() => new DecisionEngine({ minConfidence: -0.1 })).toThrow(/minConfidence must be between 0 and 1/);
    expect(() => new DecisionEngine({ escalateThreshold: 0.8, proceedThreshold: 0.6 })).toThrow(/must not be above/);
    expect(() => new DecisionEngine({ stuckAfter: 1 })).toThrow(/stuckAfter/);
  });
});

describe('stuck detection (OpenHands-style)', () => {
  const failing = (tail: string) => [check('npm test', 1, tail)];
  const fp = (tail: string) => failureFingerprint(failing(tail), []);

  it('the same answer N times in a row → escalate with the reason', () => {
    const history = [summary({ answerExcerpt: 'Which DB?' }), summary({ answerExcerpt: 'Which DB?' })];
    expect(decide({ validation: verdict({ answer: 'Which  DB?' }), history })).toMatchObject({
      decision: 'escalate',
      rule: 'stuck',
      reason: 'the agent gave the same answer 3 times in a row',
    });
    expect(stuckReason({ task: task(), validation: verdict({ answer: 'Which DB?' }), quality: quality(0.8), confidence: confidence(0.8), history: history.slice(1) }, 3)).toBeNull();
  });

  it('the same failing check, failing the same way, N times in a row (timings in the output do not matter)', () => {
    const history = [
      summary({ answerExcerpt: 'try 1', failingChecks: ['npm test'], failureFingerprint: fp('1 failing (12ms)\nexpected 3 to be 4') }),
      summary({ answerExcerpt: 'try 2', failingChecks: ['npm test'], failureFingerprint: fp('1 failing (17ms)\nexpected 3 to be 4') }),
    ];
    const d = decide({ validation: verdict({ answer: 'try 3', claimsDone: true }), quality: quality(0.8, failing('1 failing (9ms)\nexpected 3 to be 4')), history });
    expect(d).toMatchObject({ decision: 'escalate', rule: 'stuck', reason: 'check(s) `npm test` failed the same way 3 times in a row' });
  });

  it('a failing check whose output changes is progress, not stuck', () => {
    const history = [
      summary({ decision: 'proceed', answerExcerpt: 'try 1', failureFingerprint: fp('3 failing') }),
      summary({ decision: 'proceed', answerExcerpt: 'try 2', failureFingerprint: fp('2 failing') }),
    ];
    const d = decide({ validation: verdict({ answer: 'try 3' }), quality: quality(0.8, failing('1 failing')), history });
    expect(d.rule).toBe('progressingWithFailingChecks');
  });

  it('the same validation problem N times in a row', () => {
    const codes = ['truncated'];
    const history = [summary({ answerExcerpt: 'a', failureFingerprint: failureFingerprint([], codes) }), summary({ answerExcerpt: 'b', failureFingerprint: failureFingerprint([], codes) })];
    const d = decide({ validation: verdict({ ok: false, codes, reasons: ['cut off'], answer: 'c' }), history });
    expect(d).toMatchObject({ rule: 'stuck', reason: 'the same validation problem (truncated) came back 3 times in a row (last: cut off)' });
  });

  it('an A/B alternation over the last four iterations', () => {
    const history = [summary({ answerExcerpt: 'Use approach A.' }), summary({ answerExcerpt: 'Use approach B.' }), summary({ answerExcerpt: 'Use approach A.' })];
    expect(decide({ validation: verdict({ answer: 'Use approach B.' }), history })).toMatchObject({ rule: 'stuck', reason: 'the agent alternates between two answers (A, B, A, B)' });
    expect(decide({ validation: verdict({ answer: 'Use approach C.' }), history }).rule).toBe('progressing');
  });

  it('stuck_after is the policy\'s: with 4, three repeats are not yet stuck', () => {
    const e = new DecisionEngine({ stuckAfter: 4, maxRetriesPerGoal: 10 });
    const history = [summary({ answerExcerpt: 'same' }), summary({ answerExcerpt: 'same' })];
    expect(decide({ validation: verdict({ answer: 'same' }), history }, e).rule).not.toBe('stuck');
    expect(decide({ validation: verdict({ answer: 'same' }), history: [summary({ answerExcerpt: 'same' }), ...history] }, e).rule).toBe('stuck');
  });

  it('normalises what changes from run to run: durations, timestamps, addresses, temp paths', () => {
    expect(normaliseOutput('at 2026-11-25T13:00:01.123Z took 1.5s (12 ms) 0xdeadbeef /tmp/obra-abc/x.js')).toBe('at <time> took <dur> (<dur>) <addr> <tmp>');
  });
});
