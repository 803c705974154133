import type { AgentProgress } from '../agents/agent.js';
import type { IterationRecord, RunStatus } from '../core/types.js';

/** What the engine reports while it works (the CLI prints these; library users may too). */
export type EngineEvent =
  | { type: 'run-started'; runId: string; resumed: boolean; store: string }
  | { type: 'state'; actor: 'task' | 'iteration'; index: number; state: string; at: number }
  | { type: 'retry'; kind: 'sessionBusy' | 'rateLimited'; index: number; sessionId: string; delayMs: number; attempt: number; maxRetries: number; dueAt: number; reason: string; holder?: string }
  | { type: 'response'; index: number; chars: number; attempts: number; durationMs: number }
  | { type: 'agent-progress'; index: number; progress: AgentProgress }
  | { type: 'iteration-done'; record: IterationRecord }
  /** The task waits for the account's usage limit to reset (`dueAt`: reset + margin), then runs the iteration again. */
  | { type: 'usage-limit'; index: number; limitType: string | null; resetsAt: number; dueAt: number; message: string }
  | { type: 'run-finished'; runId: string; status: RunStatus; reason: string };
