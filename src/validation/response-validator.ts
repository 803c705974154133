import type { AgentCallRecord, TaskSpec, ValidationVerdict } from '../core/types.js';

/** The status line the prompt asks for; the last one in the answer counts. */
const STATUS_LINES = /^\s*\**STATUS:\**\s*(DONE|CONTINUE)\b/gim;

/** Every code the validator can give, with what it means (shown in the README and used by stuck detection). */
export const VALIDATION_CODES = {
  is_error: 'the CLI reported an error (`is_error: true`)',
  error_max_turns: 'the agent hit its turn limit (`subtype: error_max_turns`)',
  error_during_execution: 'the agent failed while working (`subtype: error_during_execution`)',
  error_subtype: 'another error subtype of the CLI result',
  empty: 'no answer text',
  too_short: 'shorter than `quality.min_answer_chars` and without a STATUS line',
  truncated: 'cut off: the model ran out of tokens, a code block is left open, or it ends mid-sentence',
  question_only: 'the agent only asked a question back instead of doing the work',
  missing_marker: 'a `task.required_markers` text is missing',
  malformed: 'the CLI printed something that is not its JSON result',
  timeout: 'the agent call took longer than `agent.local.timeout` and was killed',
  crashed: 'the agent process died without an answer',
  fatal: 'the agent cannot run (binary missing, not logged in, ...)',
  not_an_answer: 'the call ended without an answer for another reason (busy session, rate limit, ...)',
  validator_error: 'the validator itself failed on this input (a bug: the verdict says so instead of crashing)',
} as const;
export type ValidationCode = keyof typeof VALIDATION_CODES;

export interface ValidatorOptions {
  /** Answers shorter than this (without a STATUS line) are too short. */
  minAnswerChars: number;
}

/**
 * Judges whether the agent's reply is a usable answer. It never throws: every problem becomes a reason (for
 * people) and a code (for the DecisionEngine's rules and stuck detection).
 */
export class ResponseValidator {
  constructor(private readonly options: ValidatorOptions) {}

  validate(call: AgentCallRecord, task: TaskSpec): ValidationVerdict {
    try {
      return this.judge(call, task);
    } catch (error) {
      return {
        ok: false,
        reasons: [`the answer could not be validated: ${error instanceof Error ? error.message : String(error)}`],
        codes: ['validator_error'],
        answer: safeAnswer(call),
        claimsDone: false,
      };
    }
  }

  private judge(call: AgentCallRecord, task: TaskSpec): ValidationVerdict {
    const reasons: string[] = [];
    const codes: ValidationCode[] = [];
    const fail = (code: ValidationCode, reason: string) => {
      if (!codes.includes(code) || code === 'missing_marker') {
        codes.push(code);
        reasons.push(reason);
      }
    };
    const outcome = call?.outcome;
    if (!outcome || typeof outcome !== 'object') {
      fail('malformed', 'the agent call recorded no outcome');
      return { ok: false, reasons, codes, answer: null, claimsDone: false };
    }
    if (outcome.kind !== 'answer') {
      const code: ValidationCode = outcome.kind === 'malformed' || outcome.kind === 'timeout' || outcome.kind === 'crashed' || outcome.kind === 'fatal' ? outcome.kind : 'not_an_answer';
      fail(code, `${describeOutcome(outcome.kind)}: ${oneLine(outcome.message, 300)}`);
      return { ok: false, reasons, codes, answer: outcome.kind === 'malformed' ? String(outcome.raw ?? '') : null, claimsDone: false };
    }

    const result = outcome.result;
    if (typeof result?.result !== 'string') {
      fail('malformed', 'the CLI result has no text in its `result` field');
      return { ok: false, reasons, codes, answer: null, claimsDone: false };
    }
    const answer = result.result;
    const trimmed = answer.trim();
    const status = lastStatus(answer);

    // Decided on `is_error`, never on `subtype` alone: an API error comes back as subtype "success" + is_error.
    if (result.is_error === true) {
      const api = result.api_error_status ? ` (API status ${result.api_error_status})` : '';
      fail('is_error', `the CLI reported an error${api}: ${oneLine(trimmed, 200) || result.subtype}`);
    }
    if (result.subtype === 'error_max_turns') {
      fail('error_max_turns', `the agent hit its turn limit after ${result.num_turns} turns without finishing`);
    } else if (result.subtype === 'error_during_execution') {
      fail('error_during_execution', 'the agent failed during execution (`error_during_execution`)');
    } else if (typeof result.subtype === 'string' && result.subtype.startsWith('error')) {
      fail('error_subtype', `the CLI result has the error subtype "${result.subtype}"`);
    }

    if (!trimmed) fail('empty', 'the answer is empty');
    else if (trimmed.length < this.options.minAnswerChars && status === null) {
      fail('too_short', `the answer is only ${trimmed.length} characters (at least ${this.options.minAnswerChars} expected, or a STATUS line)`);
    }

    const truncation = truncationOf(trimmed, result.stop_reason ?? null);
    if (truncation) fail('truncated', `the answer looks cut off: ${truncation}`);
    if (trimmed && status !== 'DONE' && asksOnlyAQuestion(trimmed)) {
      fail('question_only', 'the agent only asked a question back instead of doing the work');
    }
    for (const marker of task?.requiredMarkers ?? []) {
      if (!answer.includes(marker)) fail('missing_marker', `the answer lacks the required marker "${marker}"`);
    }
    return { ok: codes.length === 0, reasons, codes, answer, claimsDone: status === 'DONE', status, apiErrorStatus: result.is_error ? (result.api_error_status ?? null) : null };
  }
}

function describeOutcome(kind: string): string {
  switch (kind) {
    case 'malformed':
      return 'the CLI printed no usable result';
    case 'timeout':
      return 'the agent call timed out';
    case 'crashed':
      return 'the agent process crashed';
    case 'fatal':
      return 'the agent cannot run';
    default:
      return `the call ended without an answer (${kind})`;
  }
}

/** `DONE`, `CONTINUE` or null; when the agent wrote several status lines, the last one is its final word. */
export function lastStatus(answer: string): 'DONE' | 'CONTINUE' | null {
  let status: 'DONE' | 'CONTINUE' | null = null;
  for (const match of answer.matchAll(STATUS_LINES)) status = match[1]!.toUpperCase() as 'DONE' | 'CONTINUE';
  return status;
}

function truncationOf(text: string, stopReason: string | null): string | null {
  if (stopReason === 'max_tokens') return 'the model ran out of output tokens (`stop_reason: max_tokens`)';
  if ((text.match(/^\s*```/gm)?.length ?? 0) % 2 === 1) return 'a code block is opened but never closed';
  // "Here is the fix:" and nothing after it.
  if (/[:,(\[{]$/.test(text) && !/STATUS:/i.test(text.split('\n').at(-1) ?? '')) return 'it ends in the middle of a sentence';
  return null;
}

/**
 * A reply whose sentences are (nearly) all questions and that shows no work: no code, no list of changes.
 * "I added X. Should I also do Y?" is not question-only; "Which database should I migrate?" is.
 */
export function asksOnlyAQuestion(text: string): boolean {
  if (!text.includes('?') || text.includes('```')) return false;
  const withoutStatus = text.replace(STATUS_LINES, '').trim();
  const sentences = withoutStatus.split(/(?<=[.!?])\s+|\n+/).map((s) => s.trim()).filter(Boolean);
  const questions = sentences.filter((s) => s.endsWith('?'));
  if (!questions.length || !withoutStatus.endsWith('?')) return false;
  const statements = sentences.filter((s) => !s.endsWith('?') && !/^[-*]\s/.test(s));
  const listItems = sentences.filter((s) => /^[-*]\s/.test(s) && !s.endsWith('?'));
  // A line or two of lead-in ("I looked at the repo.") is fine; a report of changes is not a question.
  const reportsWork = statements.some((s) => WORK_DONE.test(s));
  return listItems.length === 0 && !reportsWork && statements.join(' ').length < 200;
}

const WORK_DONE = /\b(added|wrote|written|created|updated|fixed|implemented|changed|modified|removed|renamed|refactored|migrated|ran|tested|installed|edited|moved)\b/i;

function oneLine(text: unknown, max: number): string {
  const s = String(text ?? '').replace(/\s+/g, ' ').trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function safeAnswer(call: AgentCallRecord): string | null {
  try {
    const outcome = call.outcome;
    return outcome.kind === 'answer' && typeof outcome.result.result === 'string' ? outcome.result.result : null;
  } catch {
    return null;
  }
}
