import type { TaskEvent } from '../../../machines/task.machine.js';
import type { AgentSpec } from '../../agents/agent-for.js';
import type { IterationRecord, RunStatus, TaskSpec } from '../../core/types.js';
import type { UsageTotals } from '../../core/usage-totals.js';
import type { RaceFile } from '../../persisted/race-file.js';
import type { RaceMember } from '../../race/race-submit.js';
import type { AttemptEvidence } from '../../race/rank.js';

/**
 * What Obra keeps in Restate — the one module that knows its shape (as src/persisted/ does for a store folder).
 *
 *   ObraTask/<runId>     the run: its record (`run`, and apart what never changes, `spec`), its journal in chunks (`j<n>`), its iteration records one a
 *                        key (`i<n>`), and the transcript of its last call, saved with the journal: its mark
 *                        (`transcript`: length, hash, parts) and its parts (`t<n>`, gzip members appended as it grows)
 *   ObraQueue/<shard>    a line per task (status, priority, age): what workers take work from, what `status` lists
 *                        (`all`, `q1`..`q3`: a run's shard by its id, or that of the run it follows)
 *   ObraWaiter/<worker>  an idle worker's wait for work (no state: an awakeable the queue resolves)
 *   ObraSession/<id>     one agent session: which run's drive holds it (the lock), and the transcript it was let
 *                        go with (for another run on the same session): a reference to the run that holds it
 *   ObraRace/<raceId>    a race's decision (`decision`: the shape of the local store's races/<raceId>.json), kept
 *                        once its last attempt has ended; its attempts are the runs <raceId>-1 … <raceId>-<n>
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
  /** Its iterations' tokens and cost summed (none: a run an earlier Obra kept). */
  usage?: UsageTotals;
  /** The agent kind it runs with (claude, codex, ...), as `obra status` shows it. */
  agentKind?: string | null;
  /** Set for an attempt of a race (`obra submit --agents/--attempts`): the race, and which attempt of how many. */
  race?: RaceMember | null;
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
  /**
   * Its journal's chunks (`j0`..), the last line's sequence number, the chunk that holds the last checkpoint (a
   * drive restores from there on), and the last chunk packed alone, which reading starts from (the chunks after it
   * are packed each against the one before; none said: the checkpoint's, as an earlier Obra packed every chunk alone).
   */
  journal: { chunks: number; lastSeq: number; checkpointChunk: number; aloneChunk?: number };
  /** Workers that took it, in order (a task that moved shows where). */
  workers: string[];
  /** The queue shard its line is in (see QUEUE_SHARDS; none: the first, as an earlier Obra kept them all). */
  queueKey?: string;
  /** The index of the last iteration record kept (records are kept one a key: a new one is checked against it). */
  lastIteration?: number;
  /**
   * A task parked until then (epoch ms): it waits for the account's usage limit to reset, on a Restate timer,
   * with no worker holding it; the timer queues it again.
   */
  wakeAt?: number | null;
  /**
   * What is kept of its transcript (see kept-transcript.ts): null, none; not there, a run an earlier Obra kept,
   * whose mark has a key of its own.
   */
  transcriptKept?: KeptTranscript | null;
}

/**
 * What ObraTask keeps of a run apart (`spec`, written once at submit): the bulk of its record, which no call
 * changes. The rest (`run`) is rewritten by every append of its drive.
 */
export type RunSpec = Pick<RemoteRun, 'config' | 'input' | 'agent' | 'workspace'>;
export type StoredRun = Omit<RemoteRun, keyof RunSpec>;

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
  usage?: UsageTotals | null;
  agent?: string | null;
  task: string;
  worker: string | null;
  /** Parked until then (epoch ms): not offered to workers before. */
  wakeAt: number | null;
  /** The run it follows (not offered before that one is done). */
  after: string | null;
  /** When a worker was last offered it (another is offered it only after a while: the first may be claiming it). */
  offeredAt?: number;
  /** The race it is an attempt of. */
  race?: RaceMember | null;
}

export interface Claimed {
  epoch: number;
  run: RemoteRun;
  /** The journal's lines from its last checkpoint on: what a drive restores from. */
  tail: string[];
  iterations: IterationRecord[];
  /** The transcript after the run's last call, as its drives saved it. */
  transcript: RunTranscript | null;
  /** The server's time when it answered (the drive reckons the server's time from it: see ObraTask's writes' `at`). */
  now?: number;
}

export interface Heartbeat {
  ok: boolean;
  /** Events sent to the run since the last heartbeat. */
  events: TaskEvent[];
  /** The transcript delta sent did not go on from the copy kept (which is unchanged): send it whole next time. */
  transcriptRefused?: boolean;
}

export interface SessionHold {
  ok: boolean;
  heldBy?: string;
  /** The transcript saved after the session's last call: whole, or where it is kept. */
  transcript?: SavedTranscript | TranscriptRef | null;
}

/**
 * What a transcript was when saved: its length in bytes and its SHA-256. A delta goes on from a mark; a worker
 * compares its local file with the mark of the copy that matches the journal.
 */
export interface TranscriptMark {
  length: number;
  sha256: string;
}

/** A whole transcript (gzip, base64), with its mark. */
export interface SavedTranscript extends TranscriptMark {
  gzipBase64: string;
  /** Its size gzipped. */
  bytes: number;
  savedAt: number;
  savedBy: string;
}

/** A transcript saved by a run, with the session it is of. */
export type RunTranscript = SavedTranscript & { sessionId: string };

/** Where a session's transcript is kept: by the run whose drive let it go (`ObraTask/<runId>/transcript`). */
export interface TranscriptRef extends TranscriptMark {
  runId: string;
  sessionId: string;
  savedAt: number;
  savedBy: string;
}

/**
 * A transcript as a drive sends it with a write: the bytes after `base` (the mark Restate holds; the CLI's
 * transcript is append-only JSONL), or the whole of it when `base` is null (Restate holds none, or another).
 */
export interface TranscriptWrite {
  sessionId: string;
  base: TranscriptMark | null;
  /** The bytes after `base` (or all of them), gzipped: one gzip member, appended to the parts kept. */
  gzipBase64: string;
  /** The whole transcript after this write. */
  mark: TranscriptMark;
  savedAt: number;
  savedBy: string;
}

/** How ObraTask keeps a run's transcript: its mark and the number of its parts (`t0`..`t<parts-1>`). */
export interface KeptTranscript extends TranscriptMark {
  sessionId: string;
  parts: number;
  bytes: number;
  savedAt: number;
  savedBy: string;
}

export const TASK_OBJECT = 'ObraTask';
export const QUEUE_OBJECT = 'ObraQueue';
export const SESSION_OBJECT = 'ObraSession';
export const RACE_OBJECT = 'ObraRace';

/** `ObraRace/<raceId>/decide`: the decision, and whether this call made it (null while an attempt has not ended). */
export type RaceDecided = { decision: RaceFile; fresh: boolean } | null;

/** `ObraTask/<runId>/attempt`: how a race's attempt stands, and what it left to be ranked by. */
export interface AttemptState {
  status: RunStatus;
  race: RaceMember | null;
  /** Once it has ended for the race (null before: nothing to rank yet, and its records are not unpacked). */
  evidence: AttemptEvidence | null;
}
/** The queue's first shard: what `list` is asked of (it asks the others), and where runs of an earlier Obra are. */
export const QUEUE_KEY = 'all';
/**
 * The queue's shards: a run's line is in one of them, so that no one key takes every update and every take. A run
 * that follows another is in that one's shard (its take checks how that one ended).
 */
export const QUEUE_SHARDS = [QUEUE_KEY, 'q1', 'q2', 'q3'];

/** The shard of a run that follows no other: by its id. */
export function shardOf(runId: string): string {
  let hash = 0;
  for (let i = 0; i < runId.length; i++) hash = (hash * 31 + runId.charCodeAt(i)) >>> 0;
  return QUEUE_SHARDS[hash % QUEUE_SHARDS.length]!;
}
/**
 * What wakes an idle worker's wait: the queue shard that has work for it, and the task whose line has just become
 * takeable there (a task that follows no other), which the worker claims at once, without a take.
 */
export interface WorkWake {
  shard: string;
  runId?: string;
}

/** An idle worker's wait for work (keyed by the worker): see `waiterObject`. */
export const WAITER_OBJECT = 'ObraWaiter';

export function queueLineOf(run: StoredRun): QueueLine {
  return {
    runId: run.runId,
    status: run.status,
    reason: run.reason,
    priority: run.priority,
    submittedAt: run.submittedAt,
    updatedAt: run.updatedAt,
    iterations: run.iterations,
    totalCostUsd: run.totalCostUsd,
    usage: run.usage ?? null,
    agent: run.agentKind ?? null,
    task: run.task.text,
    worker: run.owner?.worker ?? null,
    wakeAt: run.wakeAt ?? null,
    after: run.after ?? null,
    ...(run.race ? { race: run.race } : {}),
  };
}
