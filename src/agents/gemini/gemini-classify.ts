import type { AgentOutcome } from '../../core/types.js';
import type { RawCall } from '../classify.js';
import { crashedOutcome, firstStderrLine, stoppedOutcome, type CliNames } from '../cli-stopped.js';
import type { GeminiTurn } from './gemini-stream.js';

/**
 * Gemini CLI's exit codes: an API error exits with its HTTP status modulo 256 (429 → 173, 500 → 244), 41 is auth,
 * 42 bad input (session ids), 44 sandbox, 52 config, 53 the turn limit, 54 a fatal tool error, 55 an untrusted
 * folder, 130 cancelled.
 */
const API_ERROR_EXIT = new Map([[173, 429], [244, 500], [247, 503], [146, 402]]);
const SESSION_EXISTS = /Session ID "[^"]+" already exists/;
const NO_SESSION = /Invalid session identifier|No previous sessions found for this project/;
const DAILY_QUOTA = /exhausted your daily quota/i;
const NOISE = /^(Warning: 256-color|YOLO mode is enabled|Ripgrep is not available|\[STARTUP\]|Approval mode overridden)/;

export const GEMINI_CLI: CliNames = { kind: 'gemini', product: 'Gemini CLI', npmPackage: '@google/gemini-cli' };

export function classifyGemini(call: RawCall, turn: GeminiTurn): Exclude<AgentOutcome, { kind: 'answer' }> | { kind: 'answer'; apiStatus: number | null } {
  // Gemini retries a 429 or 500 for about 4 minutes in silence, and a hung API for about 11: silence is all Obra sees.
  const stopped = stoppedOutcome(call, GEMINI_CLI);
  if (stopped) return stopped;
  const stderrLine = firstStderrLine(call.stderr, NOISE);
  if (call.exitCode === 42 && SESSION_EXISTS.test(call.stderr)) return { kind: 'sessionBusy', message: stderrLine };
  if (call.exitCode === 42 && NO_SESSION.test(call.stderr)) return { kind: 'noConversation', message: stderrLine };
  if (call.exitCode === 41) return { kind: 'fatal', message: `the agent cannot reach the API: ${stderrLine || 'authentication failed (exit 41)'}` };
  if (call.exitCode === 55) return { kind: 'fatal', message: `gemini refused to run in an untrusted folder: ${stderrLine}` };
  if (call.exitCode === 44 || call.exitCode === 52) return { kind: 'fatal', message: `gemini refused to run (exit ${call.exitCode}): ${stderrLine}` };

  const status = call.exitCode === null ? null : (API_ERROR_EXIT.get(call.exitCode) ?? null);
  if (turn.result?.status === 'error' || status !== null) {
    const message = turn.result?.error ?? stderrLine ?? `API error (exit ${call.exitCode})`;
    if (DAILY_QUOTA.test(message)) return { kind: 'usageLimit', message, limitType: 'daily', resetsAt: null, blockedBy: null };
    if (status === 429) return { kind: 'rateLimited', status: 429, message };
    if (status === 401 || status === 403) return { kind: 'fatal', message: `the agent cannot reach the API: ${message}` };
    if (turn.result) return { kind: 'answer', apiStatus: status };
  }
  if (turn.result) return { kind: 'answer', apiStatus: null };
  if (call.signal) return crashedOutcome(call, stderrLine);
  if (call.exitCode !== 0) return crashedOutcome(call, stderrLine);
  return { kind: 'malformed', message: turn.sessionId ? 'gemini ended without its result line' : 'gemini printed no init event', raw: call.stdout.slice(0, 64 * 1024) };
}
