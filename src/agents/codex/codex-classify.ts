import type { AgentOutcome } from '../../core/types.js';
import type { RawCall } from '../classify.js';
import { crashedOutcome, firstStderrLine, stoppedOutcome, type CliNames } from '../cli-stopped.js';
import type { CodexTurn } from './codex-stream.js';

/** A second `codex exec resume` of a thread another process is writing: refused by the CLI itself (exit 1). */
const ACTIVE_WRITER = /already has an active writer/;
/** `resume <id>` of a thread this CODEX_HOME does not hold. */
const NO_ROLLOUT = /no rollout found for thread id/;
const CODEX_HOME_MISSING = /CODEX_HOME points to/;
/** The API refused the key (not measured offline: the status Codex prints in `unexpected status 401 ...`). */
const AUTH = /\b(401|403)\b|Unauthorized|Forbidden|invalid.{0,20}api.?key|not logged in|Please run .?codex login/i;
/** A ChatGPT plan's usage limit (not measured offline: Codex's wording "You've hit your usage limit ... try again in ..."). */
const USAGE_LIMIT = /usage limit/i;
const RATE_LIMITED = /\b429\b|Too Many Requests/i;
/** The stream went silent and Codex gave up after its own reconnects (`stream_idle_timeout_ms`). */
const STREAM_STALLED = /idle timeout waiting for SSE|stream disconnected before completion/i;
/** stderr lines Codex prints on every run; they say nothing about a failure. */
const NOISE = /^(Reading additional input from stdin|WARNING: proceeding, even though|Stack backtrace|\s*\d+: <unknown>)/;

export const CODEX_CLI: CliNames = { kind: 'codex', product: 'Codex', npmPackage: '@openai/codex' };

/**
 * Maps what `codex exec --json` did to the same outcomes Claude Code's calls get. The error texts are not parsed
 * for the kind of failure where Codex gives none (a 5xx reads "We're currently experiencing high demand"):
 * `turn.failed` and the exit code decide, and an API error after the CLI's own retries is an answer with
 * `is_error` — as Claude's — that the validator judges.
 */
export function classifyCodex(call: RawCall, turn: CodexTurn, now: number): Exclude<AgentOutcome, { kind: 'answer' }> | { kind: 'answer' } {
  if (call.spawnError && call.spawnCode === 'EACCES') return { kind: 'fatal', message: 'the codex binary is not executable — chmod +x it or point agent.codex.command / --agent-bin at the right file' };
  // Codex has no timeout before the API's response headers: a hung API is silence until our watchdog.
  const stopped = stoppedOutcome(call, CODEX_CLI);
  if (stopped) return stopped;
  // Its log lines start with a time stamp and a target: the message after them is what it said.
  const stderrLine = firstStderrLine(call.stderr, NOISE).replace(/^\S+Z ERROR \S+: /, '');
  if (ACTIVE_WRITER.test(call.stderr)) return { kind: 'sessionBusy', message: stderrLine };
  if (NO_ROLLOUT.test(call.stderr)) return { kind: 'noConversation', message: stderrLine };
  if (CODEX_HOME_MISSING.test(call.stderr)) return { kind: 'fatal', message: `${stderrLine} — create that folder or unset agent.codex.home` };

  if (turn.failure !== null) {
    const message = turn.failure;
    if (USAGE_LIMIT.test(message)) return { kind: 'usageLimit', message, limitType: null, resetsAt: resetOf(message, now), blockedBy: null };
    if (RATE_LIMITED.test(message)) return { kind: 'rateLimited', status: 429, message };
    if (AUTH.test(message)) return { kind: 'fatal', message: `the agent cannot reach the API: ${message}` };
    if (STREAM_STALLED.test(message)) return { kind: 'stalled', idleMs: 0, message: `the API stream went silent and codex gave up after its own retries: ${message}` };
    return { kind: 'answer' };
  }
  if (turn.usage) return { kind: 'answer' };
  if (call.signal) return crashedOutcome(call, stderrLine);
  if (call.exitCode !== 0) {
    if (AUTH.test(call.stderr)) return { kind: 'fatal', message: `the agent cannot reach the API: ${stderrLine}` };
    if (/^error: (unexpected argument|unrecognized|invalid value)/im.test(call.stderr)) return { kind: 'fatal', message: `codex refused its arguments: ${stderrLine}` };
    return crashedOutcome(call, stderrLine);
  }
  return { kind: 'malformed', message: turn.threadId ? 'codex ended without completing its turn (no turn.completed)' : 'codex printed no thread.started event', raw: call.stdout.slice(0, 64 * 1024) };
}

/** "try again in 2 hours 5 minutes" / "in 3 days" → epoch ms; null when the message names no delay. */
export function resetOf(message: string, now: number): number | null {
  const tail = /try again in ([^.]+)/i.exec(message)?.[1];
  if (!tail) return null;
  const units: Record<string, number> = { day: 86_400, hour: 3_600, minute: 60, second: 1 };
  let seconds = 0;
  for (const m of tail.matchAll(/(\d+)\s*(day|hour|minute|second)s?/gi)) seconds += Number(m[1]) * units[m[2]!.toLowerCase()]!;
  return seconds > 0 ? now + seconds * 1000 : null;
}
