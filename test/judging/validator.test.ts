import { describe, expect, it } from 'vitest';
import type { AgentCallRecord, AgentOutcome } from '../../src/core/types.js';
import { asksOnlyAQuestion, lastStatus, ResponseValidator, VALIDATION_CODES } from '../../src/validation/response-validator.js';
import { answerCall, task } from './helpers.js';

const validator = new ResponseValidator({ minAnswerChars: 20 });
const withOutcome = (outcome: AgentOutcome): AgentCallRecord => ({ ...answerCall(''), outcome });

describe('ResponseValidator: one code and a reason per finding', () => {
  it('accepts a normal answer and reads the STATUS line', () => {
    const v = validator.validate(answerCall('Added greet(name) to greet.js and ran it.\nSTATUS: DONE'), task());
    expect(v).toEqual({ ok: true, reasons: [], codes: [], answer: 'Added greet(name) to greet.js and ran it.\nSTATUS: DONE', claimsDone: true, status: 'DONE', apiErrorStatus: null });
  });

  const cases: [string, AgentCallRecord, string, RegExp][] = [
    ['is_error (decided on is_error, not subtype: the CLI says "success")', answerCall('API Error: 400 {"type":"error"}', { is_error: true, api_error_status: 400 }), 'is_error', /CLI reported an error \(API status 400\): API Error: 400/],
    ['error_max_turns', answerCall('I was editing the parser when', { subtype: 'error_max_turns', num_turns: 30, stop_reason: null }), 'error_max_turns', /turn limit after 30 turns/],
    ['error_during_execution', answerCall('', { subtype: 'error_during_execution' }), 'error_during_execution', /failed during execution/],
    ['another error subtype', answerCall('Stopped.\nSTATUS: CONTINUE', { subtype: 'error_budget' }), 'error_subtype', /error subtype "error_budget"/],
    ['empty', answerCall('   \n'), 'empty', /the answer is empty/],
    ['too short', answerCall('Done it.'), 'too_short', /only 8 characters \(at least 20 expected, or a STATUS line\)/],
    ['truncated: max_tokens', answerCall('Here is the new parser implementation with all the cases', { stop_reason: 'max_tokens' }), 'truncated', /max_tokens/],
    ['truncated: an unclosed code block', answerCall('The fix:\n```js\nexport function greet(name) {\n'), 'truncated', /code block is opened but never closed/],
    ['truncated: ends mid-sentence', answerCall('I changed three files and the remaining step is to update the following:'), 'truncated', /middle of a sentence/],
    ['a question back instead of work', answerCall('Which database should I migrate?'), 'question_only', /only asked a question back/],
    ['a missing required marker', answerCall('Added greet(name) to greet.js.\nSTATUS: DONE'), 'missing_marker', /lacks the required marker "CHANGELOG:"/],
  ];

  it.each(cases)('%s', (_label, call, code, reason) => {
    const v = validator.validate(call, task({ requiredMarkers: code === 'missing_marker' ? ['CHANGELOG:'] : [] }));
    expect(v.ok).toBe(false);
    expect(v.codes).toContain(code);
    expect(v.reasons[v.codes.indexOf(code)]).toMatch(reason);
    expect(Object.keys(VALIDATION_CODES)).toContain(code);
  });

  it('the real CLI\'s API error (is_error with subtype "success", as measured with 2.1.197) is caught', () => {
    // The fields of `claude -p --output-format json` after an API 400, as the real binary printed them.
    const sample = {
      type: 'result', subtype: 'success', is_error: true, api_error_status: 400, duration_ms: 130, num_turns: 1,
      result: 'API Error: 400 mock forced 400', stop_reason: 'stop_sequence', session_id: 'e888acfc-ff7f-4463-9795-d6c7033802ee',
      total_cost_usd: 0, permission_denials: [], terminal_reason: 'completed',
    } as const;
    const v = validator.validate({ ...answerCall(''), outcome: { kind: 'answer', result: { ...sample } } }, task());
    expect(sample.subtype).toBe('success');
    expect(v.codes[0]).toBe('is_error');
  });

  it.each([
    ['malformed', { kind: 'malformed', message: 'no result line', raw: 'garbage' }, 'malformed', 'garbage'],
    ['timeout', { kind: 'timeout', message: 'killed after 900s' }, 'timeout', null],
    ['crashed', { kind: 'crashed', message: 'SIGKILL' }, 'crashed', null],
    ['fatal', { kind: 'fatal', message: 'claude not found' }, 'fatal', null],
    ['rate limited', { kind: 'rateLimited', message: '429', status: 429 }, 'not_an_answer', null],
  ] as [string, AgentOutcome, string, string | null][])('a call that ended %s is a verdict, not an exception', (_label, outcome, code, answer) => {
    const v = validator.validate(withOutcome(outcome), task());
    expect(v).toMatchObject({ ok: false, codes: [code], answer, claimsDone: false });
    expect(v.reasons[0]).toContain((outcome as { message: string }).message);
  });

  it('several findings at once keep their order and each its reason', () => {
    const v = validator.validate(answerCall('', { is_error: true, subtype: 'error_during_execution' }), task({ requiredMarkers: ['A', 'B'] }));
    expect(v.codes).toEqual(['is_error', 'error_during_execution', 'empty', 'missing_marker', 'missing_marker']);
    expect(v.reasons).toHaveLength(5);
  });

  it('never throws: nonsense records become a verdict', () => {
    const weird: unknown[] = [
      null,
      {},
      { outcome: null },
      { outcome: { kind: 'answer', result: null } },
      { outcome: { kind: 'answer', result: { result: 42 } } },
      { outcome: { kind: 'answer', get result() { throw new Error('boom'); } } },
    ];
    for (const call of weird) {
      const v = validator.validate(call as AgentCallRecord, task());
      expect(v.ok).toBe(false);
      expect(v.codes.length).toBeGreaterThan(0);
    }
    expect(validator.validate({ outcome: { kind: 'answer', get result() { throw new Error('boom'); } } } as unknown as AgentCallRecord, task()).codes).toEqual(['validator_error']);
    expect(validator.validate(answerCall('fine answer that is long enough'), null as never).ok).toBe(true);
  });

  it('question-only means no work shown: a report that ends with a question is not flagged', () => {
    expect(asksOnlyAQuestion('Which database should I migrate?')).toBe(true);
    expect(asksOnlyAQuestion('I looked around. Should I use Postgres or SQLite?')).toBe(true);
    expect(asksOnlyAQuestion('I added greet(name) to greet.js, wrote three tests and updated the README. Should I also add a CLI flag?')).toBe(false);
    expect(asksOnlyAQuestion('Changes:\n- greet.js: new greet(name)\n- README: example\nShall I continue?')).toBe(false);
    expect(asksOnlyAQuestion('Done: greet(name) works.')).toBe(false);
    // A question with STATUS: DONE is a finished task with a remark.
    expect(validator.validate(answerCall('All set. Anything else?\nSTATUS: DONE'), task()).codes).not.toContain('question_only');
  });

  it('the last STATUS line is the agent\'s final word', () => {
    expect(lastStatus('STATUS: CONTINUE\n...\nSTATUS: DONE')).toBe('DONE');
    expect(lastStatus('STATUS: DONE\nthen more\n**STATUS:** CONTINUE')).toBe('CONTINUE');
    expect(lastStatus('no status here')).toBeNull();
  });
});
