import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { ConfidenceScorer, DEFAULT_CONFIDENCE_WEIGHTS } from '../../src/scoring/confidence-scorer.js';
import { createJudging } from '../../src/scoring/judging.js';
import { QualityController, taskCoverage } from '../../src/scoring/quality-controller.js';
import { failureFingerprint } from '../../machines/summary.js';
import { answerCall, check, task, verdict } from './helpers.js';

const answer = 'Added greet(name) to greet.js and ran the tests; they pass.\nSTATUS: DONE';
const base = { task: task(), call: answerCall(answer, { num_turns: 3 }), validation: verdict({ answer, claimsDone: true }), checks: [] };

describe('QualityController (heuristics + checks)', () => {
  it('scores the four weighted parts of the original (syntax, requirements, code quality, testing)', () => {
    const report = new QualityController().score({ ...base, checks: [check('npm test', 0)] });
    expect(Object.keys(report.breakdown)).toEqual(['syntax', 'requirements', 'code_quality', 'testing']);
    expect(report.breakdown.syntax).toBe(1);
    expect(report.breakdown.testing).toBe(1);
    const b = report.breakdown;
    expect(report.score).toBeCloseTo(0.2 * b.syntax! + 0.3 * b.requirements! + 0.3 * b.code_quality! + 0.2 * b.testing!, 3);
  });

  it('testing comes from the checks: one of two failing halves it; claiming success while they fail costs code quality', () => {
    const claims = new QualityController().score({ ...base, checks: [check('npm test', 0), check('npx tsc', 2)] });
    expect(claims.breakdown.testing).toBe(0.5);
    expect(claims.notes).toContain('the answer claims the work is verified but checks fail');
    const honest = 'Added greet(name) to greet.js; tsc still reports a type problem.\nSTATUS: CONTINUE';
    const quiet = new QualityController().score({ ...base, validation: verdict({ answer: honest }), call: answerCall(honest, { num_turns: 3 }), checks: [check('npm test', 0), check('npx tsc', 2)] });
    expect(quiet.breakdown.code_quality).toBeGreaterThan(claims.breakdown.code_quality!);
  });

  it('weights come from config: all weight on testing makes the score the checks\' pass rate', () => {
    const c = configSchema.parse({ quality: { weights: { syntax: 0, requirements: 0, code_quality: 0, testing: 1 } } });
    const report = new QualityController(c.quality.weights).score({ ...base, checks: [check('a', 0), check('b', 1), check('c', 0), check('d', 0)] });
    expect(report.score).toBe(0.75);
  });

  it('claimed versus shown work: "added/wrote" with no tool use in the call lowers code quality', () => {
    const shown = new QualityController().score({ ...base, call: answerCall(answer, { num_turns: 4 }) });
    const notShown = new QualityController().score({ ...base, call: answerCall(answer, { num_turns: 1 }) });
    expect(shown.breakdown.code_quality! - notShown.breakdown.code_quality!).toBeCloseTo(0.2, 3);
    expect(notShown.notes).toContain('the answer claims changes but the agent used no tools in this call');
  });

  it('work shown in another CLI\'s stream counts the same: a Codex or Gemini call that changed files is not marked down', () => {
    const oneTurn = answerCall(answer, { num_turns: 1 });
    const codexWithEdits = new QualityController().score({ ...base, call: { ...oneTurn, work: { toolCalls: 1, filesChanged: ['/w/greet.js'] } } });
    const codexIdle = new QualityController().score({ ...base, call: { ...oneTurn, work: { toolCalls: 0, filesChanged: [] } } });
    expect(codexWithEdits.breakdown.code_quality! - codexIdle.breakdown.code_quality!).toBeCloseTo(0.2, 3);
    expect(codexIdle.notes).toContain('the answer claims changes but the agent used no tools in this call');
  });

  it('error words and a question instead of work pull the parts down; a broken answer scores low syntax', () => {
    const errors = 'Tried it: error, failed, exception, traceback.\nSTATUS: CONTINUE';
    expect(new QualityController().score({ ...base, validation: verdict({ answer: errors }), call: answerCall(errors) }).breakdown.code_quality).toBe(0.4);
    expect(new QualityController().score({ ...base, validation: verdict({ ok: false, codes: ['question_only'], answer: 'Which one?' }) }).breakdown.requirements).toBe(0.3);
    expect(new QualityController().score({ ...base, validation: verdict({ ok: false, codes: ['is_error'], answer: 'API Error' }) }).breakdown.syntax).toBe(0);
  });

  it('requirements: the share of the task\'s key words the answer mentions', () => {
    expect(taskCoverage('Add a greet(name) function to greet.js', 'Added greet(name) with a function body')).toBe(1);
    expect(taskCoverage('Migrate the database schema', 'Fixed a typo')).toBe(0);
    expect(taskCoverage('Fix it', 'anything')).toBe(1);
  });
});

describe('ConfidenceScorer', () => {
  const q = new QualityController().score(base);

  it('explains each factor in one line and combines them with the configured weights', () => {
    const report = new ConfidenceScorer().score({ validation: base.validation, quality: q, history: [], call: base.call });
    expect(report.explanation).toEqual([
      'validation 1: the answer is usable',
      `quality ${q.score.toFixed(2)}`,
      'history 0.70: first iteration, no history yet',
      'agent 1.00: the agent says the task is done',
    ]);
    const w = DEFAULT_CONFIDENCE_WEIGHTS;
    expect(report.score).toBeCloseTo((w.validation + q.score * w.quality + 0.7 * w.history + w.agent) / (w.validation + w.quality + w.history + w.agent), 3);
  });

  it('weights from config change the score (all on history)', () => {
    const c = configSchema.parse({ confidence: { weights: { validation: 0, quality: 0, history: 1, agent: 0 } } });
    expect(new ConfidenceScorer(c.confidence.weights).score({ validation: base.validation, quality: q, history: [], call: base.call }).score).toBe(0.7);
  });

  it('the same failure as last time lowers it; steady improvement raises it', () => {
    const failing = [check('npm test', 1, 'expected 1 to be 2')];
    const failingQuality = { ...q, checks: failing };
    const same = new ConfidenceScorer().score({
      validation: base.validation,
      quality: failingQuality,
      history: [{ index: 1, decision: 'retry', quality: q.score, confidence: 0.5, answerExcerpt: '', feedback: null, failingChecks: ['npm test'], validationCodes: [], failureFingerprint: failureFingerprint(failing, []) }],
      call: base.call,
    });
    expect(same.explanation[2]).toBe('history 0.20: the same failure as the previous iteration');
    expect(same.explanation[3]).toMatch(/the agent says done but checks fail/);

    const improving = new ConfidenceScorer().score({
      validation: base.validation,
      quality: q,
      history: [0.3, 0.5].map((quality, i) => ({ index: i + 1, decision: 'proceed' as const, quality, confidence: 0.5, answerExcerpt: '', feedback: null, failingChecks: [], validationCodes: [] })),
      call: base.call,
    });
    expect(improving.explanation[2]).toMatch(/^history 0\.95: improving for 2 iteration\(s\)/);
    expect(improving.score).toBeGreaterThan(same.score);
  });

  it('lists the evidence\'s warnings (a judge that did not answer) and notes a judge that disagrees with the checks', () => {
    const warned = new ConfidenceScorer().score({ validation: base.validation, quality: { ...q, warnings: ['LLM judge (m at h) is unreachable (ECONNREFUSED); quality scored from checks and heuristics only'] }, history: [], call: base.call });
    expect(warned.explanation.at(-1)).toBe('warning: LLM judge (m at h) is unreachable (ECONNREFUSED); quality scored from checks and heuristics only');
    const disagree = new ConfidenceScorer().score({ validation: base.validation, quality: { ...q, breakdown: { ...q.breakdown, judge: 0.1 } }, history: [], call: base.call });
    expect(disagree.explanation.some((l) => /LLM judge \(0\.10\) and the other evidence .* disagree/.test(l))).toBe(true);
  });
});

describe('createJudging wires the components from the config', () => {
  it('runs the task\'s checks after a real answer and none after a call that failed', async () => {
    const calls: string[][] = [];
    const judging = createJudging(configSchema.parse({ task: { check_timeout: 7, check_tail_chars: 321 } }), {
      runChecks: async (commands, options) => {
        calls.push(commands);
        expect(options).toMatchObject({ timeoutMs: 7000, tailChars: 321, maxOutputBytes: 16 * 1024 * 1024 });
        return commands.map((c) => check(c, 0));
      },
    });
    const t = task({ checks: ['npm test'] });
    const scored = await judging.score({ task: t, call: base.call, validation: base.validation, history: [] });
    expect(scored.quality.checks.map((c) => c.command)).toEqual(['npm test']);
    const crashed = { ...base.call, outcome: { kind: 'crashed' as const, message: 'SIGKILL' } };
    const none = await judging.score({ task: t, call: crashed, validation: judging.validate(crashed, t), history: [] });
    expect(none.quality.checks).toEqual([]);
    expect(calls).toEqual([['npm test']]);
  });
});
