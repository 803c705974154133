import type { AgentCallRecord, SessionMode } from '../core/types.js';

/** One call to the agent, as the iteration machine's `callAgent` actor asks for it. */
export interface AgentCallRequest {
  runId: string;
  index: number;
  attempt: number;
  prompt: string;
  /** `null`: start a brand-new session and report its id. */
  sessionId: string | null;
  mode: SessionMode;
  workdir: string;
  /** Aborted when the run is cancelled: the agent must stop (and kill its processes) promptly. */
  signal?: AbortSignal;
  /** Live progress (tool calls, text) for the terminal and the inspector. */
  onProgress?: (progress: AgentProgress) => void;
}

export type AgentProgress =
  | { kind: 'started'; sessionId: string; argv: string[] }
  | { kind: 'text'; text: string }
  | { kind: 'tool'; name: string; input: unknown };

/**
 * A coding agent Obra can drive. `call` never throws for things the agent did (busy session, bad output,
 * timeout): it returns them classified in `outcome`, so the machine can route on them. It throws only for
 * bugs in the agent implementation itself.
 */
export interface Agent {
  readonly name: string;
  call(request: AgentCallRequest): Promise<AgentCallRecord>;
  /**
   * Calls `listener` once `sessionId` is free again (another task of this process released it), so a waiting
   * iteration can leave its backoff early. Returns the unsubscribe function. Optional.
   */
  whenSessionFree?(sessionId: string, listener: () => void): () => void;
  /** Throws a `UserError` when the agent cannot possibly run (binary missing...), before a run is created. */
  preflight?(): void;
}
