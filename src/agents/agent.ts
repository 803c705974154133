import type { CallAgentInput } from '../../machines/iteration.machine.js';
import type { AgentCallRecord } from '../core/types.js';

/**
 * One call to the agent: what the iteration machine's `callAgent` actor asks for (its input), with the permission
 * rules the engine adds, a signal, and a progress listener.
 */
export interface AgentCallRequest extends Omit<CallAgentInput, 'checks' | 'allowedTools'> {
  /**
   * Permission rules allowed for this call besides the agent's own (`Bash(npm test)` for a check, what a person
   * granted with `obra answer --allow`).
   */
  allowedTools?: string[];
  /** Aborted when the run is cancelled: the agent must stop (and kill its processes) promptly. */
  signal?: AbortSignal;
  /** Live progress (tool calls, text) for the terminal and the inspector. */
  onProgress?: (progress: AgentProgress) => void;
}

export type AgentProgress =
  | { kind: 'started'; sessionId: string; argv: string[] }
  | { kind: 'text'; text: string }
  | { kind: 'tool'; name: string; input: unknown }
  /** The CLI retries the API by itself (429, 529, a timeout): why the call is slow. */
  | { kind: 'apiRetry'; attempt: number; maxRetries: number; delayMs: number; errorStatus: number | null; error: string }
  /** How close the account is to its usage limit (`allowed`, `allowed_warning`, `rejected`). */
  | { kind: 'usage'; status: string; limitType: string | null; resetsAt: number | null; utilization: number | null }
  /** A call of this session that outlived its (dead) Obra process was killed before this one started. */
  | { kind: 'earlierCallStopped'; sessionId: string; pgid: number; ownerPid: number; message: string };

/**
 * A coding agent Obra can drive. `call` never throws for things the agent did (busy session, bad output,
 * timeout): it returns them classified in `outcome`, so the machine can route on them. It throws only for
 * bugs in the agent implementation itself.
 */
export interface Agent {
  readonly name: string;
  /** Answers in this process, calling no API: the store's cap on calls in flight (agent.max_concurrent_calls) does not apply. */
  readonly inProcess?: boolean;
  call(request: AgentCallRequest): Promise<AgentCallRecord>;
  /**
   * Calls `listener` once `sessionId` is free again — released by another task of this process or another Obra
   * process, or already free when asked (a release between the refused call and this subscription is not lost) —
   * so an iteration waiting for Obra's own lock leaves its backoff at once. Returns the unsubscribe function.
   */
  whenSessionFree?(sessionId: string, listener: () => void): () => void;
  /**
   * What became of a call cut by a crash (the process that made it died before it heard the end), from the
   * session's own transcript, before the call is made again: `answered` when the prompt is there with a complete
   * answer after it (the record adopts that answer), `unanswered` when the prompt is there without one (the call
   * is continued, not asked again), `absent` when the prompt never reached the session. Agents whose sessions
   * cannot be read leave it out: the call is then made again as it was.
   */
  recover?(request: AgentCallRequest): CutCall | Promise<CutCall>;
  /** Throws a `UserError` when the agent cannot possibly run (binary missing...), before a run is created. */
  preflight?(): void;
  /**
   * The file this CLI keeps the session's conversation in on this machine, for `workdir` (where it is, or where a
   * copy carried from another machine goes so that a resume finds it). Agents whose sessions are not one file
   * leave it out: a Restate worker then carries nothing, and a resume the CLI cannot serve starts afresh.
   */
  sessionFile?(sessionId: string, workdir: string): string;
  /** Makes a session file copied from another machine this folder's, for a CLI that checks (Qwen Code does). */
  adoptSessionFile?(file: string, workdir: string): void;
  /**
   * For a CLI that keeps its sessions in a store of its own rather than in one file (opencode's SQLite): how a
   * session is written out to its `sessionFile` after a call, and read back into the store before a resume on
   * another machine. Agents whose `sessionFile` is the CLI's own file leave it out.
   */
  sessionStore?: SessionStore;
}

/** A CLI's session store, seen as one file per session (see Agent.sessionStore). */
export interface SessionStore {
  /** Writes the session as the store has it now to `file`. */
  save(sessionId: string, file: string, workdir: string, signal?: AbortSignal): Promise<void>;
  /** Makes the store's session exactly `file`'s (what it had of it is replaced), and `workdir`'s. */
  load(sessionId: string, file: string, workdir: string, signal?: AbortSignal): Promise<void>;
}

/** What a session's transcript says of a call cut by a crash (see Agent.recover). */
export type CutCall = (
  | { kind: 'answered'; record: AgentCallRecord }
  | { kind: 'unanswered'; note: string }
  | { kind: 'absent' }
) & {
  /** The cut call was still running (its Obra and its reaper died): stopped before the transcript was read. */
  stoppedEarlierCall?: AgentCallRecord['stoppedEarlierCall'];
};
