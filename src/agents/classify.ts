import type { AgentOutcome, AgentResult } from '../core/types.js';
import { parseClaudeOutput } from './claude-result.js';
import { crashedOutcome, firstStderrLine } from './cli-stopped.js';
import { lastUsageInfo } from './stream-events.js';

/** What one CLI run left behind, before it is classified. */
export interface RawCall {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
  stoppedBy: 'timeout' | 'abort' | 'idle' | null;
  timeoutMs: number;
  /** The silence that stopped the call (`stoppedBy: 'idle'`). */
  idleMs?: number;
  spawnError: string | null;
  /** The system's error code when the binary could not be started (ENOENT, EACCES). */
  spawnCode?: string | null;
  overflow: boolean;
  maxOutputBytes?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string) => UUID.test(value);

/** `--session-id U` for an existing U (permanent: the flag creates sessions). */
const SESSION_IN_USE = /Session ID (\S+) is already in use/;
/** `--resume U` for a U that does not exist in this working directory. */
const NO_CONVERSATION = /No conversation found with session ID/;
/**
 * The CLI refused its arguments or its environment: retrying cannot help, so the run fails fast with the CLI's
 * own words. (Texts measured on Claude Code 2.1.x.)
 */
const REFUSED = [
  /^error: unknown option/im,
  /^error: option '.*' argument/im,
  /^error: required option/im,
  /argument missing/i,
  /Invalid session ID\. Must be a valid UUID/i,
  /--resume requires a valid session ID/i,
  /requires --verbose/i,
  /can only be used with --continue or --resume/i,
  /Invalid API key/i,
  /Please run \/login/i,
  /Failed to authenticate/i,
];
/** `--dangerously-skip-permissions` (or `--permission-mode bypassPermissions`) as root without IS_SANDBOX=1. */
const ROOT_REFUSAL = /cannot be used with root\/sudo privileges/i;
/** What Obra adds to the CLI's refusal to run as root with every permission skipped. */
export const ROOT_ADVICE =
  'Claude Code skips permission checks as root only inside a sandbox: set IS_SANDBOX=1 in the environment if this machine is a disposable ' +
  'container or VM, or run Obra as a normal user, or use agent.local.permission_mode: acceptEdits with agent.local.allowed_tools instead';
const AUTH_STATUSES = new Set([401, 403]);
/** The CLI's words for a subscriber's usage limit ("You've hit your session limit · resets 2:04pm (UTC)"). */
const USAGE_LIMIT_TEXT = /^You've hit your\b/i;
const OVERLOADED_TEXT = /\b529\b|overloaded/i;
const RATE_LIMITED_TEXT = /\b429\b|rate.?limit/i;

/**
 * Maps what the CLI did to an outcome the iteration machine routes on:
 * - `sessionBusy` / `noConversation`: the session errors on stderr (exit 1, nothing on stdout);
 * - `usageLimit`: a subscriber's usage limit (a 429 with `rate_limit_event` "rejected"), with its reset time;
 * - `rateLimited`: a result with `is_error` and API status 429 or 529 — also the CLI's "Repeated 529 Overloaded
 *   errors" after its own retries, which carries `api_error_status: null`;
 * - `stalled`: the call printed nothing for the idle timeout and was killed;
 * - `fatal`: bad flags, auth (API 401/403, "Invalid API key"), a binary that cannot start;
 * - `answer`: any result object (even `is_error`, which the validator judges — decided on `is_error`, not `subtype`);
 * - `timeout`, `crashed` (signal, non-zero exit without output), `malformed` (no result object; raw text kept).
 */
export function classify(call: RawCall): AgentOutcome {
  if (call.spawnError) return { kind: 'fatal', message: call.spawnError };
  if (call.stoppedBy === 'timeout') return { kind: 'timeout', message: `the agent did not finish within ${(call.timeoutMs / 1000).toFixed(1)}s and was killed` };
  if (call.stoppedBy === 'abort') return { kind: 'crashed', message: 'the call was aborted (run cancelled)' };
  if (call.stoppedBy === 'idle') {
    const idleMs = call.idleMs ?? 0;
    return { kind: 'stalled', idleMs, message: `the agent printed nothing for ${(idleMs / 1000).toFixed(0)}s and was killed (agent.local.idle_timeout)` };
  }
  if (call.overflow) {
    const limit = call.maxOutputBytes ? ` (${(call.maxOutputBytes / 1024 / 1024).toFixed(0)} MiB)` : '';
    return { kind: 'malformed', message: `the agent printed more output than allowed${limit} and was stopped`, raw: call.stdout.slice(0, 16 * 1024) };
  }
  const said = firstStderrLine(call.stderr);
  if (SESSION_IN_USE.test(call.stderr)) return { kind: 'sessionBusy', message: said };
  if (NO_CONVERSATION.test(call.stderr)) return { kind: 'noConversation', message: said };

  const parsed = parseClaudeOutput(call.stdout);
  if (parsed.result) {
    const { result } = parsed;
    if (result.is_error) {
      const status = result.api_error_status ?? null;
      const text = result.result || `API error ${status ?? ''}`.trim();
      const usageLimit = usageLimitOf(result, call.stdout);
      if (usageLimit) return usageLimit;
      if (status === 429 || status === 529) return { kind: 'rateLimited', status, message: text };
      if (status === null && OVERLOADED_TEXT.test(text)) return { kind: 'rateLimited', status: 529, message: text };
      if (status === null && RATE_LIMITED_TEXT.test(text) && /API Error/i.test(text)) return { kind: 'rateLimited', status: 429, message: text };
      if ((status !== null && AUTH_STATUSES.has(status)) || REFUSED.some((re) => re.test(text))) {
        return { kind: 'fatal', message: `the agent cannot reach the API: ${text}` };
      }
      if (ROOT_REFUSAL.test(text)) return { kind: 'fatal', message: `the agent refused to run: ${text} — ${ROOT_ADVICE}` };
    }
    return { kind: 'answer', result };
  }
  if (call.signal) return crashedOutcome(call, said);
  if (call.exitCode !== 0 && !call.stdout.trim()) {
    if (ROOT_REFUSAL.test(call.stderr)) return { kind: 'fatal', message: `the agent refused to run: ${said} — ${ROOT_ADVICE}` };
    if (REFUSED.some((re) => re.test(call.stderr))) return { kind: 'fatal', message: `the agent refused to run: ${said}` };
    return crashedOutcome(call, said);
  }
  return { kind: 'malformed', message: parsed.error ?? 'unreadable output', raw: call.stdout.slice(0, 64 * 1024) };
}

/**
 * A subscriber's usage limit: an API 429 whose stream carried `rate_limit_event` with status `rejected` (or the
 * CLI's "You've hit your ..." text). `resetsAt` is the reliable field: the text shows a time only when the
 * reset is under a day away, in the process's time zone, and its wording changes between versions. An org's
 * spend limit (`overageDisabledReason: org_level_...`, "You've hit your org's monthly spend limit") is not
 * lifted by the account's reset: there is nothing to wait for. A 429 without the usage-limit report ("Server is
 * temporarily limiting requests (not your usage limit)") is an ordinary rate limit.
 */
function usageLimitOf(result: AgentResult, stdout: string): AgentOutcome | null {
  const text = result.result ?? '';
  const info = lastUsageInfo(stdout);
  const rejected = info?.status === 'rejected' && (info.resetsAt !== null || info.overageDisabledReason !== null);
  if (!rejected && !USAGE_LIMIT_TEXT.test(text)) return null;
  if (result.api_error_status !== 429 && result.api_error_status != null) return null;
  const orgLevel = (info?.overageDisabledReason ?? '').startsWith('org_level') || /\bspend limit\b/i.test(text);
  return {
    kind: 'usageLimit',
    message: text || 'usage limit reached',
    limitType: info?.limitType ?? null,
    resetsAt: orgLevel ? null : (info?.resetsAt ?? null),
    blockedBy: orgLevel ? `the organisation's spend limit${info?.overageDisabledReason ? ` (${info.overageDisabledReason})` : ''}` : null,
  };
}
