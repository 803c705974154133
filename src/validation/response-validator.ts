import type { AgentCallRecord, TaskSpec, ValidationVerdict } from '../core/types.js';

const DONE_LINE = /^\s*STATUS:\s*DONE\b/im;
const STATUS_LINE = /^\s*STATUS:\s*(DONE|CONTINUE)\b/im;

/**
 * Judges whether the agent's reply is a usable answer. It never throws: every problem becomes a reason (for
 * people) and a code (for the DecisionEngine's stuck detection).
 */
export class ResponseValidator {
  constructor(private readonly options: { minAnswerChars: number }) {}

  validate(call: AgentCallRecord, task: TaskSpec): ValidationVerdict {
    const reasons: string[] = [];
    const codes: string[] = [];
    const fail = (code: string, reason: string) => {
      codes.push(code);
      reasons.push(reason);
    };
    const outcome = call.outcome;
    if (outcome.kind !== 'answer') {
      fail(outcome.kind, outcome.message);
      return { ok: false, reasons, codes, answer: outcome.kind === 'malformed' ? outcome.raw : null, claimsDone: false };
    }
    const { result } = outcome;
    const answer = result.result ?? '';
    if (result.is_error) {
      fail('is_error', `the CLI reported an error${result.api_error_status ? ` (API status ${result.api_error_status})` : ''}: ${answer.slice(0, 200) || result.subtype}`);
    }
    if (result.subtype === 'error_max_turns') fail('error_max_turns', `the agent hit its turn limit after ${result.num_turns} turns`);
    if (result.subtype === 'error_during_execution') fail('error_during_execution', 'the agent failed during execution');
    if (!answer.trim()) fail('empty', 'the answer is empty');
    else if (answer.trim().length < this.options.minAnswerChars && !STATUS_LINE.test(answer)) {
      fail('too_short', `the answer is only ${answer.trim().length} characters`);
    }
    if (result.stop_reason === 'max_tokens' || unbalancedFences(answer)) fail('truncated', 'the answer looks cut off');
    if (asksOnlyAQuestion(answer)) fail('question_only', 'the agent only asked a question back instead of doing the work');
    for (const marker of task.requiredMarkers) {
      if (!answer.includes(marker)) fail('missing_marker', `the answer lacks the required marker "${marker}"`);
    }
    return { ok: codes.length === 0, reasons, codes, answer, claimsDone: DONE_LINE.test(answer) };
  }
}

function unbalancedFences(text: string): boolean {
  return (text.match(/^```/gm)?.length ?? 0) % 2 === 1;
}

function asksOnlyAQuestion(text: string): boolean {
  const trimmed = text.trim();
  if (!trimmed.endsWith('?') || STATUS_LINE.test(trimmed)) return false;
  // A short reply that ends in a question and shows no work (no code, no list of changes).
  return trimmed.length < 600 && !trimmed.includes('```') && !/^\s*[-*] /m.test(trimmed);
}
