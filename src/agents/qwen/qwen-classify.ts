import type { AgentOutcome, AgentResult } from '../../core/types.js';
import type { RawCall } from '../classify.js';
import { crashedOutcome, firstStderrLine, stoppedOutcome, type CliNames } from '../cli-stopped.js';

/** `--session-id U` of an existing U (exit 1). */
const SESSION_IN_USE = /Session Id \S+ is already in use/;
/** `-r U` of a U this folder does not hold (exit 1): "with title" for an unknown id, "with ID" from another folder. */
const NO_SESSION = /No saved session found with/;
/** Qwen Code answers an API failure with its text (exit 0, `is_error: false`): `[API Error: 500 The server had …]`. */
const API_ERROR = /^\[API Error: (?:(\d{3})\b)?/;

export const QWEN_CLI: CliNames = { kind: 'qwen', product: 'Qwen Code', npmPackage: '@qwen-code/qwen-code' };

/**
 * Maps what `qwen -p … -o stream-json` did to the same outcomes as Claude Code's calls. Its stream has Claude's
 * shape (`system/init`, `assistant`, `user`, `result`), but an API error after its retries is not an error there:
 * the result's text starts with `[API Error:` — that text decides.
 */
export function classifyQwen(call: RawCall, result: AgentResult | null): Exclude<AgentOutcome, { kind: 'answer' }> | { kind: 'answer'; apiStatus: number | null; apiError: boolean } {
  // A 429 is retried for many minutes in silence, a hung API 4 × 120 s: silence is all Obra sees.
  const stopped = stoppedOutcome(call, QWEN_CLI);
  if (stopped) return stopped;
  const stderrLine = firstStderrLine(call.stderr);
  if (SESSION_IN_USE.test(call.stderr)) return { kind: 'sessionBusy', message: stderrLine };
  if (NO_SESSION.test(call.stderr)) return { kind: 'noConversation', message: stderrLine };
  if (result) {
    const m = API_ERROR.exec(result.result);
    if (!m && !result.is_error) return { kind: 'answer', apiStatus: null, apiError: false };
    const status = m?.[1] ? Number(m[1]) : null;
    if (status === 429) return { kind: 'rateLimited', status, message: result.result };
    if (status === 401 || status === 403) return { kind: 'fatal', message: `the agent cannot reach the API: ${result.result}` };
    return { kind: 'answer', apiStatus: status, apiError: true };
  }
  if (call.signal) return crashedOutcome(call, stderrLine);
  if (call.exitCode !== 0) return crashedOutcome(call, stderrLine);
  return { kind: 'malformed', message: 'qwen printed no result line', raw: call.stdout.slice(0, 64 * 1024) };
}
