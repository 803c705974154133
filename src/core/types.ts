/**
 * The plain data that flows through Obra's statecharts. Everything here is JSON-serialisable on purpose:
 * it lives in machine context, so it is what `getPersistedSnapshot()` saves and what replay feeds back.
 */

/** The eight atomic states of one iteration, in pipeline order. */
export const ITERATION_STATES = [
  'building',
  'prompting',
  'awaitingAgent',
  'retryingSessionLock',
  'validating',
  'scoring',
  'deciding',
  'persisting',
] as const;
export type IterationStateName = (typeof ITERATION_STATES)[number];

/**
 * What an iteration can end with: the DecisionEngine's choices (the original Obra's actions plus `done`), `fail`
 * when the iteration could not finish, and `wait` when it was suspended by the account's usage limit (it is
 * not counted and is run again once the limit resets).
 */
export const DECISIONS = ['done', 'proceed', 'clarify', 'retry', 'escalate', 'checkpoint', 'fail', 'wait'] as const;
export type Decision = (typeof DECISIONS)[number];

export type { RunStatus } from './statuses.js';

export interface TaskSpec {
  /** What the user asked for. */
  text: string;
  /** The directory the agent (and the checks) work in. Claude Code sessions belong to a directory. */
  workdir: string;
  /** Shell commands that must pass for the task to count as done (`npm test`, `tsc`, ...). */
  checks: string[];
  /** Markers the answer must contain to be accepted (task-specific). */
  requiredMarkers: string[];
  /**
   * Set for a task that resolves a merge conflict (`obra merge --resolve`): Obra's own gate, checked with the
   * task's checks after every answer — no conflict marker may be left in `files` (the conflicted ones) nor in
   * any file that differs from `since` (the base's commit the merge started from).
   */
  conflictGate?: ConflictGate;
}

export interface ConflictGate {
  since: string;
  files: string[];
  /** The commit being merged: it must stay merged (in progress, or concluded), or its changes would be dropped. */
  tip?: string;
}

/** One exponential backoff: wait initial × backoff^(n-1), capped, before retry n (of at most maxRetries). */
export interface BackoffPolicy {
  maxRetries: number;
  initialDelayMs: number;
  backoff: number;
  maxDelayMs: number;
  jitter: 'none' | 'full' | 'equal';
}

/** How the iteration waits when the agent's session is busy. Times are in milliseconds. */
export interface RetryPolicy extends BackoffPolicy {
  onExhausted: 'fail' | 'fresh';
  /** Waits for an API that is rate limited or overloaded (429/529); the session policy when absent. */
  rateLimit?: BackoffPolicy;
  /** How many times a silent call (no output for `idle_timeout`) is killed and re-issued; 2 when absent. */
  idleRetries?: number;
  /** Waiting for the account's usage limit to reset; the defaults when absent. */
  usageLimit?: UsageLimitPolicy;
}

/** How a task waits for the account's usage limit. Milliseconds. */
export interface UsageLimitPolicy {
  /** Added to the reset time before the next call (clocks differ; a call right at the reset may still be refused). */
  marginMs: number;
  /** A reset further away than this is not waited for: the task asks a human instead. */
  maxWaitMs: number;
}

/** How the agent's conversation is carried from one call to the next. */
export type SessionMode = 'create' | 'resume' | 'fork';

/** The JSON result object `claude -p --output-format json` prints (the fields Obra relies on). */
export interface AgentResult {
  type: 'result';
  subtype: string;
  is_error: boolean;
  result: string;
  session_id: string;
  duration_ms: number;
  num_turns: number;
  total_cost_usd: number;
  api_error_status?: number | null;
  stop_reason?: string | null;
  usage?: Record<string, unknown>;
  /** The tool uses the CLI refused because no permission rule allowed them (headless mode never asks). */
  permission_denials?: readonly { tool_name: string; tool_use_id?: string; tool_input?: unknown }[];
}

/** A tool use the agent was refused, as Obra records and shows it. */
export interface PermissionDenial {
  tool: string;
  /** What it wanted to do, in one short line (a path, a command). */
  input: string;
  /** The Claude Code permission rule that would allow it (`Write`, `Bash(npm run lint)`): what `--allow` takes. */
  rule: string;
}

/**
 * The account's usage limit as the CLI reported it (`rate_limit_event` in stream-json, subscribers only).
 * Times are epoch milliseconds.
 */
export interface UsageLimit {
  /** `five_hour`, `seven_day`, ... (null when the CLI did not say). */
  limitType: string | null;
  /** When the limit resets; null when there is nothing to wait for. */
  resetsAt: number | null;
  /** Set when the limit is not the account's own window (an org's spend limit): waiting does not lift it. */
  blockedBy: string | null;
  /** The CLI's own words ("You've hit your session limit · resets 2:04pm (UTC)"). */
  message: string;
}

/**
 * What one agent call came back with, already classified. The machine routes on `kind` with named guards,
 * so every way a call can end is a visible transition rather than an exception.
 */
export type AgentOutcome =
  | { kind: 'answer'; result: AgentResult }
  /** `holder` is set when Obra's own session lock was taken (no CLI was started); absent when the CLI said so. */
  | { kind: 'sessionBusy'; message: string; holder?: string }
  /** `sharedUntil`: no call was made — another task of the account was refused, and all wait until then. */
  | { kind: 'rateLimited'; message: string; status: number; sharedUntil?: number }
  /** The subscriber's usage limit: the task waits for its reset (or a human, when there is none to wait for). */
  | ({ kind: 'usageLimit' } & UsageLimit)
  /** The call printed nothing for `agent.local.idle_timeout` and was killed (its process group): re-issued. */
  | { kind: 'stalled'; message: string; idleMs: number }
  | { kind: 'noConversation'; message: string }
  | { kind: 'timeout'; message: string }
  | { kind: 'crashed'; message: string }
  | { kind: 'malformed'; message: string; raw: string }
  | { kind: 'fatal'; message: string };

/** Everything one agent call did, kept so a run can be replayed without the agent. */
export interface AgentCallRecord {
  outcome: AgentOutcome;
  /** The argv the agent was started with (binary first), or a description for in-process agents. */
  argv: string[];
  sessionId: string;
  mode: SessionMode;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  startedAt: number;
  durationMs: number;
  /** Clock time when the call finished; the backoff due time is computed from it. */
  finishedAt: number;
  /** The call's tokens and cost, the same fields for every agent CLI (absent when the CLI reported none). */
  tokens?: TokenUsage;
  /** How many times the CLI retried the API itself during the call (its `api_retry` lines). */
  apiRetries?: number;
  /** The last usage-limit status the CLI reported (`allowed`, `allowed_warning` with `utilization`, `rejected`). */
  usage?: UsageStatus | null;
  /** The tool uses the CLI refused during the call (no permission rule allowed them). */
  permissionDenials?: PermissionDenial[];
  /**
   * What the agent did in the call, read from a stream whose shape is not Claude Code's (Claude's own tool uses
   * are read from its stream-json): tools it ran and files it changed.
   */
  work?: { toolCalls: number; filesChanged: string[] };
  /**
   * How the session's conversation got to this machine, when a task moved between workers: its transcript
   * restored, or (none to be had) a fresh session that goes on from Obra's own context.
   */
  session?: { restored: boolean; note: string };
  /**
   * A call cut by a crash and recovered from the session's transcript: `adopted` — its complete answer was found
   * there and taken instead of asking again (no process ran); `continued` — its prompt was there without an
   * answer, and the agent was asked to continue instead of being given the prompt a second time.
   */
  recovered?: { how: 'adopted' | 'continued'; note: string };
  /**
   * A call of the same session that was still running after its Obra process died, killed (and waited for)
   * before this one started: two live calls would branch the conversation.
   */
  stoppedEarlierCall?: { pgid: number; ownerPid: number; since: string };
}

/**
 * One call's usage, normalized across agent CLIs. `inputTokens` counts every prompt token, `cachedInputTokens`
 * those of them read from the provider's cache. `costUsd` is what the CLI reported (`reported`), or computed from
 * `agent.prices` (`estimate`), or null when neither is known.
 */
export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  costUsd: number | null;
  costSource: 'reported' | 'estimate' | 'unknown';
}

/** A `rate_limit_event` of stream-json: how close the account is to its usage limit. */
export interface UsageStatus {
  status: string;
  limitType: string | null;
  resetsAt: number | null;
  utilization: number | null;
}

export interface ValidationVerdict {
  ok: boolean;
  /** Human-readable reasons, one per finding (empty when ok). */
  reasons: string[];
  /** Short codes for machines and stuck detection, e.g. `is_error`, `empty`, `question_only`. */
  codes: string[];
  /** The answer's text, when there was one. */
  answer: string | null;
  /** The agent said the task is complete (`STATUS: DONE`). */
  claimsDone: boolean;
  /** The answer's last status line (`DONE`, `CONTINUE`), or null when it has none (verdicts from before: absent). */
  status?: 'DONE' | 'CONTINUE' | null;
  /** The API's error status when the CLI reported an API error (`is_error`). */
  apiErrorStatus?: number | null;
}

export interface CheckResult {
  command: string;
  exitCode: number | null;
  durationMs: number;
  timedOut: boolean;
  /** The last lines of stdout+stderr, for the next prompt's feedback. */
  outputTail: string;
  /** The files a check Obra runs itself found wanting (the conflict gate: those with markers left). */
  paths?: string[];
}

export interface QualityReport {
  score: number;
  breakdown: Record<string, number>;
  checks: CheckResult[];
  warnings: string[];
  notes: string[];
}

export interface ConfidenceReport {
  score: number;
  explanation: string[];
}

export interface DecisionReport {
  decision: Decision;
  /** The rule that chose it, as named in the DecisionEngine (shown in `obra show` and the viewer). */
  rule: string;
  reason: string;
  /** Feedback for the next prompt (what to fix, the human's answer, ...). */
  feedback: string | null;
}

/** The short summary of an iteration that the next iterations see (kept small: it lives in context). */
export interface IterationSummary {
  index: number;
  decision: Decision;
  quality: number;
  confidence: number;
  answerExcerpt: string;
  feedback: string | null;
  failingChecks: string[];
  validationCodes: string[];
  /** The DecisionEngine rule that decided the iteration (summaries from before: absent). */
  rule?: string;
  /** What failed, as a short hash (failing checks with their normalised output, validation codes); stuck detection compares it. */
  failureFingerprint?: string;
}

/** The full record of one iteration: the iteration machine's output and one line of `iterations.jsonl`. */
export interface IterationRecord {
  runId: string;
  index: number;
  states: IterationStateName[];
  /** Agent calls made in this iteration (1 + retries). */
  attempts: number;
  /** The backoff delays waited, in ms, in order. */
  retryDelaysMs: number[];
  sessionId: string;
  sessionMode: SessionMode;
  prompt: string;
  agent: AgentCallRecord | null;
  validation: ValidationVerdict | null;
  quality: number | null;
  qualityBreakdown: Record<string, number>;
  checks: CheckResult[];
  confidence: number | null;
  confidenceExplanation: string[];
  decision: Decision;
  decisionRule: string;
  reason: string;
  feedback: string | null;
  costUsd: number;
  turns: number;
  startedAt: number;
  finishedAt: number;
  failure: string | null;
  /** What happened to the session on the way (switched to --resume, started afresh and why...). */
  sessionNotes?: string[];
  /** The tool uses the agent was refused in this iteration's call. */
  permissionDenials?: PermissionDenial[];
  /** Set when the iteration was suspended by the account's usage limit (decision `wait`). */
  usageLimit?: UsageLimit | null;
}
