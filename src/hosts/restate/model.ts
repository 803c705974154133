import type { TaskEvent } from '../../../machines/task.machine.js';
import type { AgentSpec } from '../../agents/agent-for.js';
import type { IterationRecord, RunStatus, TaskSpec } from '../../core/types.js';

/**
 * What Obra keeps in Restate — the one module that knows its shape (as src/persisted/ does for a store folder).
 *
 *   ObraTask/<runId>     the run: its record (`run`), its journal in chunks (`j<n>`), its iteration records, and
 *                        the transcript of its last call (`transcript`, saved with the journal)
 *   ObraQueue/all        a line per task (status, priority, age): what workers take work from, what `status` lists
 *   ObraSession/<id>     one agent session: which run's drive holds it (the lock), and the transcript it was let
 *                        go with (for another run on the same session)
 */

/** Where a task works: a folder every worker sees, or a git repository a worker clones (`--repo-url`). */
export type RemoteWorkspace = { kind: 'dir'; path: string } | { kind: 'git'; url: string; branch: string; base: string | null };

export interface RemoteRun {
  runId: string;
  status: RunStatus;
  reason: string;
  question: string | null;
  task: TaskSpec;
  /** The config the run started with (every worker drives it with that one). */
  config: Record<string, unknown>;
  input: Record<string, unknown>;
  sessionId: string | null;
  agent: AgentSpec;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  iterations: number;
  totalCostUsd: number;
  priority: number;
  submittedAt: string;
  workspace: RemoteWorkspace;
  /** The run this one waits for: it starts once that run is done, and is blocked when that run ends otherwise. */
  after: string | null;
  /** The worker driving it now, fenced by `epoch`: a worker whose lease ran out can write nothing more. */
  owner: { worker: string; epoch: number; leaseUntil: number } | null;
  epoch: number;
  /** Sent into the machine when a worker next takes the run (a person's answer to a run that waits). */
  startEvent: TaskEvent | null;
  /** Events for the running drive, handed to its worker with the next heartbeat (pause, cancel, an answer). */
  inbox: TaskEvent[];
  journal: { chunks: number; lastSeq: number; checkpointChunk: number };
  /** Workers that took it, in order (a task that moved shows where). */
  workers: string[];
  /**
   * A task parked until then (epoch ms): it waits for the account's usage limit to reset, on a Restate timer,
   * with no worker holding it; the timer queues it again.
   */
  wakeAt?: number | null;
}

/** A new run as `submit` writes it. */
export type NewRemoteRun = Omit<RemoteRun, 'status' | 'reason' | 'question' | 'updatedAt' | 'finishedAt' | 'iterations' | 'totalCostUsd' | 'owner' | 'epoch' | 'startEvent' | 'inbox' | 'journal' | 'workers'>;

/** The queue's line for a task. */
export interface QueueLine {
  runId: string;
  status: RunStatus;
  reason: string;
  priority: number;
  submittedAt: string;
  updatedAt: string;
  iterations: number;
  totalCostUsd: number;
  task: string;
  worker: string | null;
  /** Parked until then (epoch ms): not offered to workers before. */
  wakeAt: number | null;
  /** The run it follows (not offered before that one is done). */
  after: string | null;
  /** When a worker was last offered it (another is offered it only after a while: the first may be claiming it). */
  offeredAt?: number;
}

export interface Claimed {
  epoch: number;
  run: RemoteRun;
  /** The journal's lines from its last checkpoint on: what a drive restores from. */
  tail: string[];
  iterations: IterationRecord[];
  /** The transcript after the run's last call, as its drives saved it. */
  transcript: RunTranscript | null;
}

export interface Heartbeat {
  ok: boolean;
  /** Events sent to the run since the last heartbeat. */
  events: TaskEvent[];
}

export interface SessionHold {
  ok: boolean;
  heldBy?: string;
  /** The transcript saved after the session's last call (gzip, base64), for a worker that has none. */
  transcript?: SavedTranscript | null;
}

export interface SavedTranscript {
  gzipBase64: string;
  bytes: number;
  savedAt: number;
  savedBy: string;
}

/** A transcript saved by a run, with the session it is of. */
export type RunTranscript = SavedTranscript & { sessionId: string };

export const TASK_OBJECT = 'ObraTask';
export const QUEUE_OBJECT = 'ObraQueue';
export const SESSION_OBJECT = 'ObraSession';
export const QUEUE_KEY = 'all';

export function queueLineOf(run: RemoteRun): QueueLine {
  return {
    runId: run.runId,
    status: run.status,
    reason: run.reason,
    priority: run.priority,
    submittedAt: run.submittedAt,
    updatedAt: run.updatedAt,
    iterations: run.iterations,
    totalCostUsd: run.totalCostUsd,
    task: run.task.text,
    worker: run.owner?.worker ?? null,
    wakeAt: run.wakeAt ?? null,
    after: run.after ?? null,
  };
}
