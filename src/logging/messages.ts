import { allowFlags, describeDenials } from '../agents/permissions.js';
import type { PermissionDenial } from '../core/types.js';
import type { EngineEvent } from '../engine/events.js';

/**
 * The words shared by the terminal and run.log, so both tell the same story. The backoff warning keeps the
 * seed's shape for a busy session (`Session <id> in use, retrying in 2.0s (attempt 1/5)`); a wait for another
 * Obra task names it (its release ends the wait), a rate limit quotes the API.
 */
export function retryMessage(event: Extract<EngineEvent, { type: 'retry' }>): string {
  const seconds = `${(event.delayMs / 1000).toFixed(1)}s`;
  if (event.kind === 'rateLimited') return `API rate limited or overloaded (${event.reason.slice(0, 100)}), retrying in ${seconds} (attempt ${event.attempt}/${event.maxRetries})`;
  if (event.holder) return `Session ${event.sessionId} in use by ${event.holder}, waiting for its release (at most ${seconds} before checking again)`;
  return `Session ${event.sessionId} in use, retrying in ${seconds} (attempt ${event.attempt}/${event.maxRetries})`;
}

/** `Received response (683 chars) after 3 attempts`, as in the seed. */
export function responseMessage(event: Extract<EngineEvent, { type: 'response' }>): string {
  return `Received response (${event.chars} chars) after ${event.attempts} attempt${event.attempts === 1 ? '' : 's'}`;
}

/** `API 529 overloaded, CLI retry 3/10 in 2.1 s`: the CLI retrying the API by itself, so a person sees why it is slow. */
export function apiRetryMessage(retry: { attempt: number; maxRetries: number; delayMs: number; errorStatus: number | null; error: string }): string {
  const what =
    retry.error === 'overloaded' ? 'overloaded'
    : retry.error === 'rate_limit' ? 'rate limited'
    : retry.errorStatus === null ? 'request failed or timed out'
    : retry.error.replaceAll('_', ' ');
  const status = retry.errorStatus === null ? 'API' : `API ${retry.errorStatus}`;
  return `${status} ${what}, CLI retry ${retry.attempt}/${retry.maxRetries} in ${(retry.delayMs / 1000).toFixed(1)} s`;
}

/** `usage at 92% of the five_hour limit (resets 14:04)`: the CLI's warning that the limit is near. */
export function usageWarningMessage(usage: { limitType: string | null; resetsAt: number | null; utilization: number | null }): string {
  const share = usage.utilization === null ? 'near' : `at ${Math.round(usage.utilization * 100)}% of`;
  return `usage ${share} the ${usage.limitType ?? 'account'} limit${usage.resetsAt ? ` (resets ${clockTime(usage.resetsAt)})` : ''}`;
}

/** `usage limit (five_hour) — resumes at 14:04`: the task waits for the account's limit to reset. */
export function usageLimitMessage(limit: { limitType: string | null; dueAt: number }): string {
  return `usage limit${limit.limitType ? ` (${limit.limitType})` : ''} — resumes at ${clockTime(limit.dueAt)}`;
}

/** `the agent was refused Write /p/notes.txt (allow with --allow Write)`. */
export function denialMessage(denial: PermissionDenial): string {
  return `the agent was refused ${describeDenials([denial])} (allow with ${allowFlags([denial])})`;
}

/** A time of day in the local time zone; with the date when it is not today. */
export function clockTime(ms: number, now = Date.now()): string {
  const at = new Date(ms);
  const time = `${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
  if (at.toDateString() === new Date(now).toDateString()) return time;
  return `${at.toLocaleDateString('en-GB', { day: 'numeric', month: 'short' })} ${time}`;
}

/** `4h 59m`, `12m 5s`, `8.0s`: a length of time for countdowns and notes. */
export function spanText(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** How a call cut by a crash was recovered from the session, in a few words (`obra show`, the viewer). */
export function recoveredText(recovered: { how: 'adopted' | 'continued' }): string {
  return recovered.how === 'adopted' ? 'answer adopted from the session after a crash' : 'continued after a crash (the prompt was not given twice)';
}
