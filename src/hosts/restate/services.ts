import './polyfill.js';
import * as restate from '@restatedev/restate-sdk';
import type { TaskEvent } from '../../../machines/task.machine.js';
import { isFinalStatus } from '../../core/statuses.js';
import type { IterationRecord, RunStatus } from '../../core/types.js';
import {
  QUEUE_KEY,
  QUEUE_OBJECT,
  QUEUE_SHARDS,
  queueLineOf,
  RACE_OBJECT,
  SESSION_OBJECT,
  TASK_OBJECT,
  WAITER_OBJECT,
  type AttemptState,
  type Claimed,
  type Heartbeat,
  type NewRemoteRun,
  type QueueLine,
  type RaceDecided,
  type RemoteRun,
  type RunSpec,
  type StoredRun,
  type RunTranscript,
  type SavedTranscript,
  type SessionHold,
  type TranscriptRef,
  type TranscriptWrite,
  type WorkWake,
} from './model.js';
import { keepTranscript, readTranscript, transcriptRef } from './kept-transcript.js';
import { chunkText, linesOf, recordOf, type JournalChunk, type PackedRecord } from './journal-chunk.js';
import { addUsage, noUsage } from '../../core/usage-totals.js';
import { kindOfSpec } from '../../agents/agent-for.js';
import type { RaceFile } from '../../persisted/race-file.js';
import { attemptEnded, attemptRunId, evidenceFrom, raceDecisionOf } from '../../race/decision.js';

/**
 * Obra's Restate services. Every handler is short and only reads and writes state: no agent call, no check, no
 * git runs inside one (Restate aborts a step that outlives its timeouts, and a killed handler leaves its child
 * processes behind). The work happens in `obra worker` processes, which take tasks from the queue, hold each
 * with a lease they renew, and write their journal here; an exclusive handler runs one call per key at a time
 * across the cluster, which is what makes a run's owner, and a session's caller, one at a time.
 *
 * Timers are Restate's: a lease is checked by a delayed call to the task itself (never a sleep, which would hold
 * the task's key for its whole length).
 */

type Ctx = restate.ObjectContext;

const now = (ctx: Ctx) => ctx.date.now();
const iso = (ms: number) => new Date(ms).toISOString();

/** A call from a worker whose lease was taken over (or a run that has no such worker): refused, never retried. */
function fenced(run: StoredRun | null, epoch: number): StoredRun {
  if (!run) throw new restate.TerminalError('no such run', { errorCode: 404 });
  if (!run.owner || run.owner.epoch !== epoch) throw new restate.TerminalError(`this worker no longer holds run ${run.runId} (epoch ${epoch}; now ${run.owner ? run.owner.epoch : 'none'})`, { errorCode: 409 });
  return run;
}

/** Journal lines as a drive sends them: packed (see journal-chunk.ts), or plain. */
interface JournalBatch {
  lines?: string[];
  gz?: string;
  /** Packed against the batch kept before it. */
  z?: string;
  lastSeq: number;
  /** They hold a whole snapshot. */
  checkpoint: boolean;
}

/** What every write of a drive carries besides its lines. */
interface DriveWrite {
  epoch: number;
  leaseMs: number;
  /**
   * The server's time as the worker reckons it (its claim's answer, then the worker's monotonic clock): a handler
   * that read the clock itself would wait for Restate to journal the reading, on every write.
   */
  at?: number;
  /** Records of iterations finished since the last write (packed, in order). */
  records?: PackedRecord[];
  /** The transcript of a call made since the last write. */
  transcript?: TranscriptWrite | null;
}

/**
 * Keeps what a drive's write carries: the transcript, the lines, the records. `kept` is false when a transcript
 * delta was refused; `fresh` says the last record was new.
 */
async function keepWrite(ctx: Ctx, run: StoredRun, input: Partial<JournalBatch> & Omit<DriveWrite, 'leaseMs'>, at: number): Promise<{ kept: boolean; fresh: boolean }> {
  const kept = await keepTranscript(ctx, run, input.transcript);
  if (input.lastSeq !== undefined) appendBatch(ctx, run, { ...input, lastSeq: input.lastSeq, checkpoint: input.checkpoint ?? false });
  const fresh = input.records?.length ? await keepRecords(ctx, run, input.records, at) : false;
  return { kept, fresh };
}

/** Keeps a batch of the run's journal lines as sent, as its next chunk. */
function appendBatch(ctx: Ctx, run: StoredRun, batch: JournalBatch): void {
  const n = run.journal.chunks;
  ctx.set(`j${n}`, batch.z !== undefined ? { z: batch.z } : batch.gz !== undefined ? { gz: batch.gz } : (batch.lines ?? []));
  const { checkpointChunk, aloneChunk } = run.journal;
  run.journal = { chunks: n + 1, lastSeq: batch.lastSeq, checkpointChunk: batch.checkpoint ? n : checkpointChunk, aloneChunk: batch.z === undefined ? n : (aloneChunk ?? checkpointChunk) };
  // The event the drive started with is in its journal now (the first lines of a drive are sent before it acts).
  run.startEvent = null;
}

/** The queue hears of every change of a task's line (one-way: the task never waits for the queue). */
function tellQueue(ctx: Ctx, run: StoredRun): void {
  ctx.genericSend({ service: QUEUE_OBJECT, method: 'upsert', key: run.queueKey ?? QUEUE_KEY, parameter: queueLineOf(run), inputSerde: restate.serde.json });
}

function scheduleLeaseCheck(ctx: Ctx, epoch: number, inMs: number): void {
  ctx.genericSend({ service: TASK_OBJECT, method: 'checkLease', key: ctx.key, parameter: { epoch }, inputSerde: restate.serde.json, delay: Math.max(50, inMs) });
}

/** The drive's worker was heard from: its lease runs from now, and it takes the events sent to the run meanwhile. */
function renew(ctx: Ctx, run: StoredRun, leaseMs: number, at: number): Heartbeat {
  run.owner!.leaseUntil = at + leaseMs;
  const events = run.inbox;
  run.inbox = [];
  storeRun(ctx, run);
  return { ok: true, events };
}

/**
 * The journal's lines kept in chunks `from` to `to` (excluded), in order. A chunk packed against the one before it
 * is unpacked with that one's text: reading starts at `start`, a chunk packed alone (at or before `from`).
 */
async function journalLines(ctx: restate.ObjectSharedContext, from: number, to: number, start = from): Promise<string[]> {
  const lines: string[] = [];
  let previous: string | null = null;
  for (let n = start; n < to; n++) {
    const chunk = linesOf(await ctx.get<JournalChunk>(`j${n}`), previous);
    previous = chunkText(chunk);
    if (n >= from) lines.push(...chunk);
  }
  return lines;
}

/** The run's iteration records: kept one a key (`i<n>`), after those of a list kept whole by an earlier Obra. */
async function iterationRecords(ctx: restate.ObjectSharedContext, run: StoredRun): Promise<IterationRecord[]> {
  if (run.iterations === 0) return [];
  const records = [...((await ctx.get<IterationRecord[]>('iterations')) ?? [])];
  for (let n = records.length; n < run.iterations; n++) {
    const record = recordOf(await ctx.get<IterationRecord | PackedRecord>(`i${n}`), records.at(-1) ?? null);
    if (record) records.push(record);
  }
  return records;
}

/**
 * Keeps finished iterations' records, each once (a restored `persisting` sends its record again), under a key of
 * its own, packed as sent (its index and cost beside it). Returns whether the last one was new.
 */
async function keepRecords(ctx: Ctx, run: StoredRun, records: PackedRecord[], at: number): Promise<boolean> {
  let fresh = false;
  for (const packed of records) {
    const last = run.lastIteration ?? (await iterationRecords(ctx, run)).reduce((max, r) => Math.max(max, r.index), -Infinity);
    fresh = !(packed.index <= last);
    if (!fresh) continue;
    ctx.set(`i${run.iterations}`, packed);
    run.iterations += 1;
    run.lastIteration = packed.index;
    run.totalCostUsd += packed.costUsd ?? 0;
    if (packed.usage) run.usage = addUsage(run.usage ?? noUsage(), packed.usage);
    run.updatedAt = iso(at);
  }
  return fresh;
}

/**
 * How long Restate keeps a completed call to Obra's objects: not at all. Everything a call changes is in the
 * objects' state, and every caller waits for its answer; a call's journal and answer kept for a day (Restate's
 * default) — journal lines, a transcript, every take of an idle worker — made the server's data grow with every
 * iteration.
 */
export const CALL_RETENTION = { journalRetention: 0, idempotencyRetention: 0 };

/**
 * A run's and the queue's state grows (journal chunks, transcript parts, a line per task): a call reads the keys it
 * needs (lazy state) instead of being sent all of them, which made every append cost the length of the run.
 */
const GROWING_STATE = { ...CALL_RETENTION, enableLazyState: true };

/**
 * Writes the run's record without its spec (config, input, agent, workspace: written once, at submit), which a
 * drive's every append would otherwise rewrite — and Restate log — again.
 */
function storeRun(ctx: Ctx, run: StoredRun | RemoteRun): void {
  const { config, input, agent, workspace, ...rest } = run as RemoteRun;
  // A record kept whole (at submit, or by an earlier Obra): its spec goes apart, once.
  if (config !== undefined) ctx.set('spec', { config, input, agent, workspace } satisfies RunSpec);
  ctx.set('run', rest);
}

/** The run's whole record: its stored part and its spec. */
async function withSpec(ctx: restate.ObjectSharedContext, run: StoredRun | RemoteRun): Promise<RemoteRun> {
  if ('config' in run && run.config !== undefined) return run as RemoteRun;
  return { ...run, ...(await ctx.get<RunSpec>('spec')) } as RemoteRun;
}

/** A heartbeat that says so when the transcript sent with it was refused. */
function refusedUnless(kept: boolean, beat: Heartbeat): Heartbeat {
  return kept ? beat : { ...beat, transcriptRefused: true };
}

function saveRun(ctx: Ctx, run: StoredRun, at: number): void {
  run.updatedAt = iso(at);
  storeRun(ctx, run);
  tellQueue(ctx, run);
  // An attempt of a race that has ended tells its race, which decides once its last attempt has: the message is
  // sent by Restate when this call's state is kept, so no worker's death between the two can lose it.
  if (run.race && attemptEnded(run.status)) ctx.genericSend({ service: RACE_OBJECT, method: 'decide', key: run.race.id, parameter: {}, inputSerde: restate.serde.json });
}

export const taskObject = restate.object({
  name: TASK_OBJECT,
  options: GROWING_STATE,
  handlers: {
    /** A new run, queued. Submitting the same run id twice is refused. */
    submit: async (ctx: Ctx, fresh: NewRemoteRun): Promise<RemoteRun> => {
      if (await ctx.get<StoredRun>('run')) throw new restate.TerminalError(`run ${ctx.key} already exists`, { errorCode: 409 });
      // Its submit time (the submitting machine's): a clock read here would be a step Restate journals.
      const submitted = Date.parse(fresh.submittedAt);
      const at = Number.isFinite(submitted) ? submitted : await now(ctx);
      const run: RemoteRun = {
        ...fresh,
        status: 'queued',
        reason: '',
        question: null,
        updatedAt: iso(at),
        finishedAt: null,
        iterations: 0,
        totalCostUsd: 0,
        usage: noUsage(),
        agentKind: kindOfSpec(fresh.agent),
        owner: null,
        epoch: 0,
        startEvent: null,
        inbox: [],
        journal: { chunks: 0, lastSeq: 0, checkpointChunk: 0 },
        workers: [],
        transcriptKept: null,
      };
      saveRun(ctx, run, at);
      return run;
    },

    /**
     * A worker takes the run for a drive, if it can be driven (queued, or interrupted: its last worker stopped
     * answering). The worker gets a new epoch, its lease, and what it needs to restore the run.
     */
    claim: async (ctx: Ctx, input: { worker: string; leaseMs: number; at?: number }): Promise<Claimed | null> => {
      const run = await ctx.get<StoredRun>('run');
      if (!run || (run.status !== 'queued' && run.status !== 'interrupted')) return null;
      // The server's time as the worker reckons it from an earlier claim, else the clock (a step Restate journals).
      const at = input.at ?? (await now(ctx));
      run.epoch += 1;
      run.owner = { worker: input.worker, epoch: run.epoch, leaseUntil: at + input.leaseMs };
      run.status = 'running';
      run.reason = '';
      run.question = null;
      run.workers = [...run.workers, input.worker];
      saveRun(ctx, run, at);
      scheduleLeaseCheck(ctx, run.epoch, input.leaseMs);
      const { checkpointChunk, aloneChunk, chunks } = run.journal;
      const tail = await journalLines(ctx, checkpointChunk, chunks, Math.min(aloneChunk ?? checkpointChunk, checkpointChunk));
      return { epoch: run.epoch, run: await withSpec(ctx, run), tail, iterations: await iterationRecords(ctx, run), transcript: await readTranscript(ctx, run), now: at };
    },

    /**
     * The drive's journal lines since its last write (fenced; `checkpoint`: they hold a whole snapshot), the
     * records of the iterations they finished, and the transcript of a call made since: all kept, or none (one
     * call). Renews the lease, as a heartbeat does.
     */
    append: async (ctx: Ctx, input: Partial<JournalBatch> & DriveWrite): Promise<Heartbeat> => {
      const run = fenced(await ctx.get<StoredRun>('run'), input.epoch);
      const at = input.at ?? (await now(ctx));
      const { kept } = await keepWrite(ctx, run, input, at);
      return refusedUnless(kept, renew(ctx, run, input.leaseMs, at));
    },

    /**
     * A finished iteration's record, with the lines that led to it (as an earlier Obra's workers send it; a drive
     * now sends its records with its next append or its settle).
     */
    saveIteration: async (ctx: Ctx, input: Partial<JournalBatch> & DriveWrite & { record?: IterationRecord; packed?: PackedRecord }): Promise<Heartbeat & { fresh: boolean }> => {
      const run = fenced(await ctx.get<StoredRun>('run'), input.epoch);
      const at = input.at ?? (await now(ctx));
      const { kept, fresh } = await keepWrite(ctx, run, { ...input, records: [input.packed ?? (input.record as unknown as PackedRecord)] }, at);
      return { ...refusedUnless(kept, renew(ctx, run, input.leaseMs, at)), fresh };
    },

    /** The worker is alive: its lease is renewed, and it gets the events sent to the run meanwhile. */
    heartbeat: async (ctx: Ctx, input: { epoch: number; leaseMs: number; at?: number }): Promise<Heartbeat> => {
      const run = await ctx.get<StoredRun>('run');
      if (!run?.owner || run.owner.epoch !== input.epoch) return { ok: false, events: [] };
      return renew(ctx, run, input.leaseMs, input.at ?? (await now(ctx)));
    },

    /**
     * The drive ended or came to rest: how the run stands, and the run is let go — and the session its drive held
     * (`release`), with the run's transcript, for whoever calls on it next.
     */
    settle: async (
      ctx: Ctx,
      input: Partial<JournalBatch> &
        Omit<DriveWrite, 'leaseMs'> & {
        status: RunStatus;
        reason: string;
        question: string | null;
        sessionId: string | null;
        wakeAt?: number | null;
        release?: string | null;
        /** Events the drive was handed as it stopped listening: kept for the next drive, as later ones are. */
        unheard?: TaskEvent[];
      },
    ): Promise<StoredRun> => {
      const run = fenced(await ctx.get<StoredRun>('run'), input.epoch);
      const at = input.at ?? (await now(ctx));
      if (input.unheard?.length) run.inbox = [...input.unheard, ...run.inbox];
      // The drive's last lines and records come with it: the run's end is kept with the journal that led to it.
      await keepWrite(ctx, run, input, at);
      if (input.release) {
        // The session is told where its transcript is kept, not sent a copy of it.
        const transcript = await transcriptRef(ctx, run, input.release);
        ctx.genericSend({ service: SESSION_OBJECT, method: 'release', key: input.release, parameter: { runId: ctx.key, epoch: input.epoch, transcript }, inputSerde: restate.serde.json });
      }
      run.status = input.status;
      run.reason = input.reason;
      run.question = input.question;
      if (input.sessionId) run.sessionId = input.sessionId;
      run.finishedAt = isFinalStatus(input.status) ? iso(at) : null;
      run.owner = null;
      if (input.wakeAt && input.wakeAt > at) {
        // Parked: queued again by a Restate timer at the reset, held by no worker meanwhile.
        run.status = 'queued';
        run.reason = `parked until ${iso(input.wakeAt)}, when the account's usage limit has reset`;
        run.wakeAt = input.wakeAt;
        ctx.genericSend({ service: TASK_OBJECT, method: 'wake', key: ctx.key, parameter: { wakeAt: input.wakeAt }, inputSerde: restate.serde.json, delay: input.wakeAt - at });
      }
      // An event that came after the drive had stopped listening is kept for the next one.
      if (run.inbox.length && !isFinalStatus(input.status)) {
        run.startEvent = run.inbox[0]!;
        run.status = 'queued';
      }
      run.inbox = [];
      saveRun(ctx, run, at);
      return run;
    },

    /** Restate's timer for a lease: a worker that stopped renewing it has lost the run, which is driven again. */
    checkLease: async (ctx: Ctx, input: { epoch: number }): Promise<void> => {
      const run = await ctx.get<StoredRun>('run');
      if (!run?.owner || run.owner.epoch !== input.epoch) return;
      const at = await now(ctx);
      if (at < run.owner.leaseUntil) {
        scheduleLeaseCheck(ctx, input.epoch, run.owner.leaseUntil - at + 50);
        return;
      }
      run.reason = `worker ${run.owner.worker} stopped answering; another worker continues the run`;
      run.owner = null;
      run.status = 'interrupted';
      saveRun(ctx, run, at);
    },

    /** The run this one follows ended otherwise than done: this one never starts (the queue says so). */
    block: async (ctx: Ctx, input: { reason: string }): Promise<void> => {
      const run = await ctx.get<StoredRun>('run');
      if (!run || run.status !== 'queued' || run.owner) return;
      const at = await now(ctx);
      run.status = 'blocked';
      run.reason = input.reason;
      run.finishedAt = iso(at);
      saveRun(ctx, run, at);
    },

    /** The timer of a parked task: it may be taken again. */
    wake: async (ctx: Ctx, input: { wakeAt: number }): Promise<void> => {
      const run = await ctx.get<StoredRun>('run');
      if (!run || run.wakeAt !== input.wakeAt) return;
      run.wakeAt = null;
      saveRun(ctx, run, await now(ctx));
    },

    /**
     * An event from a person (`obra answer`, `pause`, `cancel`): to the running drive through its next
     * heartbeat; to a run at rest as the event its next drive starts with (it is queued again).
     */
    send: async (ctx: Ctx, event: TaskEvent): Promise<{ status: RunStatus; delivered: 'live' | 'queued' | 'ended' | 'refused'; why?: string }> => {
      const run = await ctx.get<StoredRun>('run');
      if (!run) throw new restate.TerminalError(`no run ${ctx.key}`, { errorCode: 404 });
      if (isFinalStatus(run.status)) return { status: run.status, delivered: 'refused', why: `it has ended (${run.status})` };
      const at = await now(ctx);
      if (event.type === 'RESUMED' && run.owner) return { status: run.status, delivered: 'refused', why: `it is running on ${run.owner.worker}` };
      if (run.owner) {
        run.inbox = [...run.inbox, event];
        storeRun(ctx, run);
        return { status: run.status, delivered: 'live' };
      }
      if (event.type === 'CANCEL' && run.status === 'queued' && run.journal.chunks === 0) {
        // Never started: nothing to drive to its end.
        run.status = 'cancelled';
        run.reason = event.reason ?? 'cancelled before it started';
        run.finishedAt = iso(at);
        saveRun(ctx, run, at);
        return { status: run.status, delivered: 'ended' };
      }
      if (event.type === 'RESUMED') {
        // `obra resume`: a paused (or interrupted) run is queued again; its drive wakes it as any restored run.
        if (run.status === 'escalated') return { status: run.status, delivered: 'refused', why: 'it waits for an answer: `obra answer` it' };
        run.status = 'queued';
        saveRun(ctx, run, at);
        return { status: run.status, delivered: 'queued' };
      }
      if (event.type === 'HUMAN_ANSWER' && run.status !== 'escalated') return { status: run.status, delivered: 'refused', why: `it is not waiting for an answer (its status is ${run.status})` };
      if (event.type === 'PAUSE') {
        // Not running: held back from the workers until `obra resume` (its saved state is where it stopped).
        if (run.status !== 'queued' && run.status !== 'interrupted') return { status: run.status, delivered: 'refused', why: `it is ${run.status}` };
        run.status = 'paused';
        run.reason = `${event.reason ?? 'paused'}; \`obra resume ${run.runId} --engine restate\` continues`;
        saveRun(ctx, run, at);
        return { status: run.status, delivered: 'ended' };
      }
      run.startEvent = event;
      run.status = 'queued';
      saveRun(ctx, run, at);
      return { status: run.status, delivered: 'queued' };
    },

    get: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext): Promise<RemoteRun | null> => {
      const run = await ctx.get<StoredRun>('run');
      return run ? withSpec(ctx, run) : null;
    }),

    /** Everything kept of the run: its record, every journal line, its iteration records (show, replay). */
    everything: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext): Promise<{ run: RemoteRun; lines: string[]; iterations: IterationRecord[] } | null> => {
      const run = await ctx.get<StoredRun>('run');
      if (!run) return null;
      const lines = await journalLines(ctx, 0, run.journal.chunks);
      return { run: await withSpec(ctx, run), lines, iterations: await iterationRecords(ctx, run) };
    }),

    /** How the run stands as an attempt of a race, and the evidence it left (ObraRace ranks by it). */
    attempt: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext): Promise<AttemptState | null> => {
      const run = await ctx.get<StoredRun>('run');
      if (!run) return null;
      const race = run.race ?? null;
      if (!attemptEnded(run.status)) return { status: run.status, race, evidence: null };
      const spec = run.agentKind ? null : (await withSpec(ctx, run)).agent;
      const agent = run.agentKind ?? kindOfSpec(spec!) ?? spec!.name;
      return { status: run.status, race, evidence: evidenceFrom({ runId: run.runId, attempt: race?.attempt ?? 1, agent, status: run.status, records: await iterationRecords(ctx, run) }) };
    }),

    /** The run's transcript, whole (a session let go by this run points here). */
    transcript: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext): Promise<RunTranscript | null> => {
      const run = await ctx.get<StoredRun>('run');
      return run ? readTranscript(ctx, run) : null;
    }),
  },
});

/** How long a task offered to one worker is kept from the others (that worker is claiming it). */
const OFFER_MS = 5_000;

/**
 * A take or a park that cannot reach its worker (the endpoint it started on is gone) is killed after a few tries
 * rather than retried for an hour: both change nothing when they fail, and meanwhile they would hold the queue's
 * key, and every other take, behind them.
 */
const DROPPED_WHEN_STUCK = { retryPolicy: { maxAttempts: 4, initialInterval: 200, onMaxAttempts: 'kill' as const } };

/** An idle worker's wait: its awakeable, and when it gives up. */
interface Waiting {
  awakeable: string;
  until: number;
}
/** Idle waits kept at most (one a worker; a worker that died leaves one until it times out). */
const MAX_WAITING = 256;

/**
 * The open tasks a worker may be offered now: queued or interrupted, not parked, not offered to another worker
 * a moment ago. A task that follows another waits until that one is done; when it ended otherwise, the task is
 * blocked, with why.
 */
async function offerable(ctx: Ctx, at: number): Promise<QueueLine[]> {
  const lines: QueueLine[] = [];
  for (const runId of (await ctx.get<string[]>('open')) ?? []) {
    const line = await ctx.get<QueueLine>(`l:${runId}`);
    if (!line || (line.wakeAt && line.wakeAt > at) || (line.offeredAt !== undefined && at - line.offeredAt <= OFFER_MS)) continue;
    if (line.after && line.status === 'queued') {
      const followed = await ctx.get<QueueLine>(`l:${line.after}`);
      // Not here yet (its line is on its way: submit checked that it exists), or not done yet: it waits.
      if (followed?.status !== 'done') {
        if (followed && isFinalStatus(followed.status)) {
          ctx.genericSend({ service: TASK_OBJECT, method: 'block', key: runId, parameter: { reason: `the run it follows, ${line.after}, ended ${followed.status}` }, inputSerde: restate.serde.json });
        }
        continue;
      }
    }
    lines.push(line);
  }
  return lines;
}

/**
 * The runs that tasks queued in this shard follow (`followed`): only the end of one of them wakes the idle
 * workers (its follower may start, or is to be blocked). Woken by every run's end, a worker that had just
 * finished a task took from a shard with nothing for it, and waited again, before it saw the next task.
 */
async function noteFollowed(ctx: Ctx, runId: string): Promise<void> {
  const followed = (await ctx.get<string[]>('followed')) ?? [];
  if (!followed.includes(runId)) ctx.set('followed', [...followed, runId]);
}

async function wasFollowed(ctx: Ctx, runId: string): Promise<boolean> {
  const followed = (await ctx.get<string[]>('followed')) ?? [];
  if (!followed.includes(runId)) return false;
  const rest = followed.filter((id) => id !== runId);
  if (rest.length) ctx.set('followed', rest);
  else ctx.clear('followed');
  return true;
}

/**
 * Wakes every idle worker's wait with this shard's key (each takes what it can here; the others wait again), and
 * the task that woke them when it may be claimed at once (the first worker's claim wins; the others take). A wait
 * that ended meanwhile (resolved by another shard, or timed out) ignores it: no clock is read for it.
 */
function wakeWaiting(ctx: Ctx, waiting: Waiting[], runId?: string): void {
  for (const w of waiting) ctx.resolveAwakeable<WorkWake>(w.awakeable, runId ? { shard: ctx.key, runId } : { shard: ctx.key });
  ctx.clear('waiting');
}

/**
 * A queue shard (see QUEUE_SHARDS) keeps a line per task under its own key (`l:<runId>`: an update writes one small
 * value, however many tasks there are) and the ids of the tasks a worker may take (`open`: what `take` reads).
 */
export const queueObject = restate.object({
  name: QUEUE_OBJECT,
  options: GROWING_STATE,
  handlers: {
    upsert: async (ctx: Ctx, line: QueueLine): Promise<void> => {
      const key = `l:${line.runId}`;
      const takeable = line.status === 'queued' || line.status === 'interrupted';
      // The idle workers first (each state read is a round trip to the server; a woken worker's take of this
      // shard waits for this call to end): a task to take; or a run that ended, which a follower waited for (it
      // may start, or be blocked by a take).
      // A line that neither offers a task nor ends a run (a claim's `running`) wakes nobody: no read of them.
      if (takeable) {
        const waiting = await ctx.get<Waiting[]>('waiting');
        if (waiting?.length && !(line.wakeAt && line.wakeAt > (await ctx.date.now()))) wakeWaiting(ctx, waiting, line.after ? undefined : line.runId);
      } else if (isFinalStatus(line.status) && (await wasFollowed(ctx, line.runId))) {
        const waiting = await ctx.get<Waiting[]>('waiting');
        if (waiting?.length) wakeWaiting(ctx, waiting);
      }
      const before = await ctx.get<QueueLine>(key);
      ctx.set(key, { ...line, offeredAt: takeable ? before?.offeredAt : undefined });
      const open = (await ctx.get<string[]>('open')) ?? [];
      const listed = open.includes(line.runId);
      if (takeable && !listed) ctx.set('open', [...open, line.runId]);
      if (!takeable && listed) ctx.set('open', open.filter((id) => id !== line.runId));
      if (takeable && line.after) await noteFollowed(ctx, line.after);
    },

    /**
     * Up to `max` tasks for a worker to claim: queued or interrupted, by priority (higher first), then age. A task
     * that follows another waits until that one is done; when it ended otherwise, the task is blocked, with why.
     */
    take: restate.handlers.object.exclusive(DROPPED_WHEN_STUCK, async (ctx: Ctx, input: { max: number; more?: boolean }): Promise<string[] | { taken: string[]; more: boolean }> => {
      const at = await ctx.date.now();
      const open = (await offerable(ctx, at)).sort((a, b) => b.priority - a.priority || a.submittedAt.localeCompare(b.submittedAt) || a.runId.localeCompare(b.runId));
      const offered = open.slice(0, Math.max(0, input.max));
      for (const line of offered) ctx.set(`l:${line.runId}`, { ...line, offeredAt: at });
      const taken = offered.map((l) => l.runId);
      // `more`: whether tasks are left here for the worker's next free slot (else it waits, rather than asks again).
      return input.more ? { taken, more: open.length > offered.length } : taken;
    }),

    /**
     * An idle worker's wait (ObraWaiter) leaves its awakeable here: resolved at once when there is work to take,
     * else when a task becomes takeable or a run ends (one that follows it may start, or is to be blocked).
     */
    park: restate.handlers.object.exclusive(DROPPED_WHEN_STUCK, async (ctx: Ctx, input: { awakeable: string; until?: number; timeoutMs?: number; at?: number }): Promise<void> => {
      // The time the worker reckons the server's to be (see its wait), else the clock: a step Restate journals.
      const at = input.at ?? (await ctx.date.now());
      if ((await offerable(ctx, at)).length) return ctx.resolveAwakeable<WorkWake>(input.awakeable, { shard: ctx.key });
      const waiting = ((await ctx.get<Waiting[]>('waiting')) ?? []).filter((w) => w.until > at);
      // The wait's end, from its length (the waiter reads no clock: a step Restate would journal before the parks).
      const wait: Waiting = { awakeable: input.awakeable, until: input.until ?? at + (input.timeoutMs ?? 0) };
      ctx.set('waiting', [...waiting, wait].slice(-MAX_WAITING));
    }),

    /** Every task's line: this shard's (`here`), or, asked of the first shard, every shard's. */
    list: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext, input?: { here?: boolean } | null): Promise<QueueLine[]> => {
      const lines: QueueLine[] = [];
      if (!input?.here && ctx.key === QUEUE_KEY) {
        const others = QUEUE_SHARDS.filter((key) => key !== QUEUE_KEY).map((key) => ctx.genericCall<{ here: boolean }, QueueLine[]>({ service: QUEUE_OBJECT, method: 'list', key, parameter: { here: true }, inputSerde: restate.serde.json, outputSerde: restate.serde.json }));
        for (const shard of await restate.RestatePromise.all(others)) lines.push(...shard);
      }
      for (const key of await ctx.stateKeys()) {
        if (!key.startsWith('l:')) continue;
        const line = await ctx.get<QueueLine>(key);
        if (line) lines.push(line);
      }
      return lines;
    }),
  },
});

export const sessionObject = restate.object({
  name: SESSION_OBJECT,
  options: CALL_RETENTION,
  handlers: {
    /**
     * Takes the session for a run's drive. A later epoch of the same run takes it over (its earlier worker lost
     * the run's lease: it is gone); anyone else waits. Returns the transcript it was last let go with.
     */
    acquire: async (ctx: Ctx, input: { runId: string; epoch: number; worker: string; newerThan?: number }): Promise<SessionHold> => {
      const holder = await ctx.get<{ runId: string; epoch: number; worker: string }>('holder');
      if (holder && !(holder.runId === input.runId && holder.epoch <= input.epoch)) return { ok: false, heldBy: `${holder.runId} on ${holder.worker}` };
      ctx.set('holder', { runId: input.runId, epoch: input.epoch, worker: input.worker });
      // The run's own copy (from its claim) is often the newest: the session's is sent only when it is newer.
      const saved = (await ctx.get<SavedTranscript | TranscriptRef>('transcript')) ?? null;
      return { ok: true, transcript: saved && saved.savedAt > (input.newerThan ?? -1) ? saved : null };
    },

    /**
     * The run lets the session go (by the epoch that holds it, or a later one of the same run: a drive that never
     * called after a failover): it is free, and its transcript (when given) kept for whichever run calls next.
     */
    release: async (ctx: Ctx, input: { runId: string; epoch: number; transcript: SavedTranscript | TranscriptRef | null }): Promise<void> => {
      const holder = await ctx.get<{ runId: string; epoch: number }>('holder');
      if (!holder || holder.runId !== input.runId || holder.epoch > input.epoch) return;
      if (input.transcript) ctx.set('transcript', input.transcript);
      ctx.clear('holder');
    },

    holder: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext) => (await ctx.get<{ runId: string; epoch: number; worker: string }>('holder')) ?? null),
  },
});

/**
 * Where an idle worker waits for work instead of asking the queue twice a second: one call (keyed by the worker)
 * that ends when the queue resolves its awakeable — a task became takeable — or after `timeoutMs`. A wait is
 * short-lived state: one whose worker's endpoint is gone is killed after a few attempts, never retried for good.
 */
export const waiterObject = restate.object({
  name: WAITER_OBJECT,
  // Suspended after a second of waiting (Restate keeps the awakeable and the timer, not an open stream to the
  // worker that serves it): a worker that stops has no wait of anyone's to cut.
  options: { ...CALL_RETENTION, inactivityTimeout: 1_000, retryPolicy: { maxAttempts: 3, onMaxAttempts: 'kill' } },
  handlers: {
    /** The shard that has work for the worker (null when none had any within `timeoutMs`). */
    wait: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext, input: { timeoutMs: number; at?: number }): Promise<WorkWake | null> => {
      const { id, promise } = ctx.awakeable<WorkWake>();
      for (const key of QUEUE_SHARDS) ctx.genericSend({ service: QUEUE_OBJECT, method: 'park', key, parameter: { awakeable: id, timeoutMs: input.timeoutMs, at: input.at }, inputSerde: restate.serde.json });
      try {
        return await promise.orTimeout(input.timeoutMs);
      } catch (error) {
        if (error instanceof restate.TimeoutError) return null;
        throw error;
      }
    }),
  },
});

/**
 * A race (keyed by its id): its decision, made once its last attempt has ended and kept for good. `decide` is
 * exclusive per race, so the first call that finds every attempt ended makes it and every later one reads it: each
 * attempt's end sends one (see saveRun), and a worker or a reader may call it too. The evidence is read from the
 * attempts' own objects (their `attempt`, a shared handler: no attempt's key is held meanwhile).
 */
export const raceObject = restate.object({
  name: RACE_OBJECT,
  options: CALL_RETENTION,
  handlers: {
    decide: async (ctx: Ctx): Promise<RaceDecided> => {
      const recorded = await ctx.get<RaceFile>('decision');
      if (recorded) return { decision: recorded, fresh: false };
      const stateOf = (n: number) => ctx.genericCall<Record<string, never>, AttemptState | null>({ service: TASK_OBJECT, method: 'attempt', key: attemptRunId(ctx.key, n), parameter: {}, inputSerde: restate.serde.json, outputSerde: restate.serde.json });
      const first = await stateOf(1);
      if (first?.race?.id !== ctx.key) return null;
      const rest = await restate.RestatePromise.all(Array.from({ length: first.race.of - 1 }, (_, i) => stateOf(i + 2)));
      const attempts = [first, ...rest];
      if (!attempts.every((a) => a && attemptEnded(a.status))) return null;
      const decision = raceDecisionOf(ctx.key, attempts.map((a) => a!.evidence!), iso(await ctx.date.now()));
      ctx.set('decision', decision);
      return { decision, fresh: true };
    },

    get: restate.handlers.object.shared(async (ctx: restate.ObjectSharedContext): Promise<RaceFile | null> => (await ctx.get<RaceFile>('decision')) ?? null),
  },
});

export const OBRA_SERVICES = [taskObject, queueObject, sessionObject, waiterObject, raceObject];
