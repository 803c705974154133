import type { AgentOutcome } from '../../core/types.js';
import type { RawCall } from '../classify.js';
import { crashedOutcome, firstStderrLine, stoppedOutcome, type CliNames } from '../cli-stopped.js';
import { resetOf } from '../codex/codex-classify.js';
import type { OpencodeTurn } from './opencode-stream.js';

/** `-s ses_…` of a session opencode's database does not hold (exit 1). */
const NO_SESSION = /Session not found/;
/** A plan's usage limit (not measured offline: the providers' wording, which opencode passes on). */
const USAGE_LIMIT = /usage limit|quota exceeded|exceeded your current quota/i;
/** The provider's `timeout` option ran out before the API answered (`UnknownError`, "The operation timed out."). */
const TIMED_OUT = /timed out/i;
/** Errors about opencode's own setup (its config, the model named): retrying cannot help. */
const SETUP = /Model not found|ProviderModelNotFound|ProviderInitError|Config(Invalid|JsonError)|is not valid JSON|Unknown provider/i;
const AUTH_NAMES = new Set(['ProviderAuthError']);

export const OPENCODE_CLI: CliNames = { kind: 'opencode', product: 'opencode', npmPackage: 'opencode-ai' };

/**
 * Maps what `opencode run --format json` did to the same outcomes as every other agent's calls. There is no result
 * event: a run that exits 0 without an `error` event answered (its text parts are the answer). An `error` event
 * comes after the CLI's own retries (5 for a 429 at its retry-after, 5 with backoff for a 5xx): a 429 is a rate
 * limit, 401/403 auth, a provider timeout a stall, any other API error an answer with `is_error` that the validator
 * judges — as Claude's and Codex's.
 */
export function classifyOpencode(call: RawCall, turn: OpencodeTurn, now: number): Exclude<AgentOutcome, { kind: 'answer' }> | { kind: 'answer'; apiStatus: number | null } {
  // A hung API is silence for 300 s per attempt (the provider's default timeout): the watchdog's to stop.
  const stopped = stoppedOutcome(call, OPENCODE_CLI);
  if (stopped) return stopped;
  const stderrLine = firstStderrLine(call.stderr, /^! permission requested/);
  if (NO_SESSION.test(call.stderr)) return { kind: 'noConversation', message: stderrLine };

  const error = turn.error;
  if (error) {
    const message = error.message;
    if (USAGE_LIMIT.test(message)) return { kind: 'usageLimit', message, limitType: null, resetsAt: resetOf(message, now), blockedBy: null };
    if (error.status === 429) return { kind: 'rateLimited', status: 429, message };
    if (error.status === 401 || error.status === 403 || AUTH_NAMES.has(error.name)) return { kind: 'fatal', message: `the agent cannot reach the API: ${message}` };
    if (error.status === null && TIMED_OUT.test(message)) return { kind: 'stalled', idleMs: 0, message: `the API did not answer within opencode's provider timeout: ${message}` };
    if (error.status === null && SETUP.test(`${error.name} ${message}`)) return { kind: 'fatal', message: `opencode refused to run: ${message}` };
    return { kind: 'answer', apiStatus: error.status };
  }
  if (call.signal) return crashedOutcome(call, stderrLine);
  if (call.exitCode !== 0) {
    if (SETUP.test(call.stderr)) return { kind: 'fatal', message: `opencode refused to run: ${stderrLine}` };
    return crashedOutcome(call, stderrLine);
  }
  if (turn.sessionId) return { kind: 'answer', apiStatus: null };
  return { kind: 'malformed', message: 'opencode exited 0 but printed no events', raw: call.stdout.slice(0, 64 * 1024) };
}
