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

/** What the DecisionEngine can choose after an iteration (the original Obra's actions plus `done`). */
export const DECISIONS = ['done', 'proceed', 'clarify', 'retry', 'escalate', 'checkpoint', 'fail'] as const;
export type Decision = (typeof DECISIONS)[number];

export type RunStatus = 'running' | 'done' | 'escalated' | 'failed' | 'max_iterations' | 'budget_exceeded' | 'cancelled' | 'awaiting_human' | 'paused' | 'interrupted';

export interface TaskSpec {
  /** What the user asked for. */
  text: string;
  /** The directory the agent (and the checks) work in. Claude Code sessions belong to a directory. */
  workdir: string;
  /** Shell commands that must pass for the task to count as done (`npm test`, `tsc`, ...). */
  checks: string[];
  /** Markers the answer must contain to be accepted (task-specific). */
  requiredMarkers: string[];
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
}

/**
 * What one agent call came back with, already classified. The machine routes on `kind` with named guards,
 * so every way a call can end is a visible transition rather than an exception.
 */
export type AgentOutcome =
  | { kind: 'answer'; result: AgentResult }
  /** `holder` is set when Obra's own session lock was taken (no CLI was started); absent when the CLI said so. */
  | { kind: 'sessionBusy'; message: string; holder?: string }
  | { kind: 'rateLimited'; message: string; status: number }
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
}

export interface CheckResult {
  command: string;
  exitCode: number | null;
  durationMs: number;
  timedOut: boolean;
  /** The last lines of stdout+stderr, for the next prompt's feedback. */
  outputTail: string;
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
}
