import type { TaskEvent } from '../../../machines/task.machine.js';
import type { IterationRecord } from '../../core/types.js';
import type { RunOutcome, RunPort } from '../../engine/host.js';
import { resultFrom, type RunResult } from '../../engine/run-result.js';
import type { LineLog } from '../../store/durable-file.js';
import { Journal } from '../../store/journal.js';
import { urlsText, type RestateClient } from './client.js';
import { chunkText, packLines, packRecord, type PackedRecord } from './journal-chunk.js';
import type { Claimed, Heartbeat, RemoteRun, TranscriptWrite } from './model.js';

/**
 * Every how many checkpoints a batch is packed alone (~2.4 KB against ~0.5 KB packed against the one before): a
 * claim then unpacks at most this many checkpoints' chunks (the engine writes one every 4 iterations).
 */
const CHECKPOINTS_A_CHUNK_ALONE = 4;

/**
 * What a drive's write carries of its journal: a batch of lines packed (see journal-chunk.ts), the last one's
 * sequence number, whether they hold a checkpoint; and the records of the iterations finished since the last write.
 */
export interface PackedBatch {
  gz?: string;
  z?: string;
  lastSeq?: number;
  checkpoint?: boolean;
  records?: PackedRecord[];
}

/**
 * A run's journal kept in Restate. Lines are handed over by `write` (kept in this process) and sent, in order,
 * one batch per `syncInBackground` — which the engine awaits before anything leaves the process and when the
 * drive ends (write-ahead, as on the files host). A synchronous `sync` cannot wait for the network: it starts
 * the send, and the next `syncInBackground` waits for it. Each batch is packed against the one sent before it;
 * a drive's first alone, and every few checkpoints' one (a claim reads from the last chunk packed alone: a few
 * iterations' chunks at most, whichever drive wrote them).
 * Iteration records handed over (`attach`) ride on the next batch: with the lines that led to them, or after.
 */
export class RestateLog implements LineLog {
  private readonly stored: string[];
  private pending: string[] = [];
  private records: PackedRecord[] = [];
  /** The text of the last batch packed (the dictionary of the next one); none yet in this drive. */
  private previous: string | null = null;
  /** Checkpoint batches packed since the last one packed alone. */
  private checkpointsSinceAlone = 0;
  private sending: Promise<unknown> = Promise.resolve();
  private failure: Error | null = null;

  constructor(
    private readonly send: (batch: PackedBatch) => Promise<void>,
    tail: string[],
  ) {
    this.stored = [...tail];
  }

  /** An iteration's record, for the next batch. */
  attach(record: PackedRecord): void {
    this.records.push(record);
  }

  write(text: string): void {
    for (const line of text.split('\n')) if (line) this.pending.push(line);
  }

  sync(): boolean {
    void this.syncInBackground().catch(() => {});
    return false;
  }

  /** Resolves when the batches already sent have been answered (nothing new is sent). */
  async settled(): Promise<void> {
    await this.sending.catch(() => {});
  }

  async syncInBackground(): Promise<boolean> {
    if (this.failure) throw this.failure;
    const batch = this.takeBatch();
    if (!batch) {
      await this.sending;
      return false;
    }
    await this.sendInOrder(() => this.send(batch));
    return true;
  }

  /**
   * Sends what is not sent yet with another write (the settle: the drive's last lines and records go with the
   * run's end, in one call), after the batches on their way.
   */
  async flushWith<T>(write: (batch: PackedBatch) => Promise<T>): Promise<T> {
    await this.settled();
    if (this.failure) throw this.failure;
    const batch = this.takeBatch() ?? {};
    return this.sendInOrder(() => write(batch));
  }

  /** Batches go one after another: Restate keeps them in the order they were written. */
  private sendInOrder<T>(write: () => Promise<T>): Promise<T> {
    const sent = this.sending.then(() =>
      write().catch((error: unknown) => {
        this.failure = error as Error;
        throw error;
      }),
    );
    this.sending = sent;
    return sent;
  }

  /** The lines and records not sent yet, packed as one batch; null when there are none. */
  private takeBatch(): PackedBatch | null {
    const lines = this.pending;
    const records = this.records;
    if (!lines.length && !records.length) return null;
    this.pending = [];
    this.records = [];
    const batch: PackedBatch = records.length ? { records } : {};
    if (!lines.length) return batch;
    this.stored.push(...lines);
    const checkpoint = lines.some((line) => line.includes(',"k":"c",'));
    if (checkpoint && ++this.checkpointsSinceAlone >= CHECKPOINTS_A_CHUNK_ALONE) this.previous = null;
    if (this.previous === null) this.checkpointsSinceAlone = 0;
    const packed = packLines(lines, this.previous);
    this.previous = chunkText(lines);
    return { ...batch, ...packed, lastSeq: Number(/^\{"seq":(\d+)/.exec(lines.at(-1)!)?.[1] ?? 0), checkpoint };
  }

  close(): void {}

  readLines(): { text: string; number: number }[] {
    return [...this.stored, ...this.pending].map((text, i) => ({ text, number: i + 1 }));
  }

  *linesFromEnd(): Generator<string> {
    const all = [...this.stored, ...this.pending];
    for (let i = all.length - 1; i >= 0; i--) yield all[i]!;
  }
}

export interface RestateRunOptions {
  client: RestateClient;
  claimed: Claimed;
  leaseMs: number;
  /** Called when the lease is lost (another worker holds the run now): the drive must stop at once. */
  onLeaseLost: () => void;
  workspace?: { afterIteration(record: IterationRecord): Promise<unknown> } | null;
  /**
   * The drive's agent session (a SessionCarrier): its last call's transcript rides on the run's next write, as a
   * delta from the copy Restate keeps; a refused delta is sent whole next time.
   */
  session?: { takeTranscript(): TranscriptWrite | null; transcriptRefused?(): void; ready?(): Promise<void>; readonly heldSession: string | null } | null;
}

/** A run held by this worker for one drive: its journal and records go to its ObraTask object, fenced by epoch. */
export class RestateRun implements RunPort {
  readonly journal: Journal;
  private readonly log: RestateLog;
  private readonly client: RestateClient;
  private readonly epoch: number;
  private heartbeat: NodeJS.Timeout | null = null;
  private listeners: ((event: TaskEvent) => void)[] = [];
  /** Events Restate handed to this drive that it did not take (see `heard`). */
  private readonly unheard: TaskEvent[] = [];
  private readonly records: IterationRecord[];
  private wakeAt: number | null = null;
  /** When the lease was last renewed (performance.now()). */
  private lastHeard = performance.now();
  /** How often a quiet drive hears from Restate (a heartbeat): a few times per lease, at least every 2 s. */
  private get heartbeatEvery(): number {
    return Math.max(100, Math.min(2_000, Math.floor(this.options.leaseMs / 3)));
  }
  /**
   * The server's time as reckoned from the claim's answer on this process's monotonic clock (within that call's
   * latency): sent with every write, so that no handler on a drive's path reads the clock itself, which costs a
   * step Restate journals. Undefined from a server that does not say (its handlers read their clock).
   */
  private readonly serverTime: () => number | undefined;

  constructor(private readonly options: RestateRunOptions) {
    this.client = options.client;
    this.epoch = options.claimed.epoch;
    this.records = [...options.claimed.iterations];
    const { now } = options.claimed;
    const claimedAt = performance.now();
    this.serverTime = now === undefined ? () => undefined : () => Math.round(now + performance.now() - claimedAt);
    this.log = new RestateLog(
      async (batch) => this.heard(await this.client.task<Heartbeat>(this.runId, 'append', { epoch: this.epoch, ...batch, leaseMs: options.leaseMs, at: this.serverTime(), transcript: this.transcript() })),
      options.claimed.tail,
    );
    this.journal = new Journal(`Restate ObraTask/${this.runId}`, undefined, this.log);
  }

  get runId(): string {
    return this.options.claimed.run.runId;
  }

  /**
   * A moving task's commit is pushed before its record: the journal's lines up to the save (the answer among
   * them) reach Restate first, so a worker that dies in between is followed by one that saves the same iteration
   * again instead of calling the agent again (which made two commits for one iteration). A task with no checkout
   * sends those lines with its record, in one call: both are kept, or neither.
   */
  get savesOutside(): boolean {
    return Boolean(this.options.workspace);
  }

  /** Each write is a call to Restate: the drive's first lines go with its first append, its last with its settle. */
  readonly writesAreCalls = true;

  get where(): string {
    return `Restate at ${urlsText(this.client.urls.ingressUrl)}`;
  }

  get run(): RemoteRun {
    return this.options.claimed.run;
  }

  /**
   * Every call of the drive renews its lease and brings the events sent to the run (a pause, a cancel); when the
   * drive has been quiet for a while (a few times per lease, at least every 2 s), a heartbeat does.
   */
  begin(): void {
    const every = this.heartbeatEvery;
    this.heartbeat = setInterval(() => {
      // The journal's appends and the records renew the lease too: a busy drive needs no heartbeat of its own.
      if (performance.now() - this.lastHeard < every) return;
      this.client
        .task<Heartbeat>(this.runId, 'heartbeat', { epoch: this.epoch, leaseMs: this.options.leaseMs, at: this.serverTime() })
        .then((beat) => this.heard(beat))
        .catch(() => {
          // Restate unreachable for a moment: the lease covers a few missed renewals.
        });
    }, every);
    this.heartbeat.unref();
  }

  /**
   * An answer that renewed the lease: the events sent to the run go to the drive; a refusal means the run is lost.
   * The events are sent on a turn of their own, as from outside (an answer to an effect's own call comes inside
   * that effect: the machine must first take the effect's result, as a replay of the journal will). Events that
   * come when the drive no longer listens (its last lines' answer, as it settles) go back to the run with the
   * settle, for its next drive: taken from Restate, they must not be lost here.
   */
  private heard(beat: Heartbeat): void {
    if (!beat.ok) return this.lost();
    if (beat.transcriptRefused) this.options.session?.transcriptRefused?.();
    this.lastHeard = performance.now();
    if (!beat.events.length) return;
    if (!this.listeners.length) {
      this.unheard.push(...beat.events);
      return;
    }
    setImmediate(() => {
      if (!this.listeners.length) this.unheard.push(...beat.events);
      else beat.events.forEach((event) => this.listeners.forEach((listener) => listener(event)));
    });
  }

  /** Events from people (answer, pause, cancel), as the replies to the drive's calls bring them. */
  control(send: (event: TaskEvent) => void): () => void {
    this.listeners.push(send);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== send);
    };
  }

  /**
   * The iteration's work first (a moving task's commit, pushed), then its record: a recorded iteration's work is
   * never lost. The record rides on the drive's next write — the append before its next step outside (the next
   * agent call), or its settle — with the lines that led to it and the call's transcript: Restate keeps all of
   * them or none, and a drive cut before that write is restored from before them (as one cut before the record
   * was). One call an iteration instead of two. This drive holds the run (fenced), so whether the record is new
   * is known here: Restate keeps the same records, and checks again.
   * A drive that has not heard from Restate for half a heartbeat's interval (its call lasted) sends the record at
   * once: the answer brings the events sent meanwhile (a cancel during the call), which must reach the machine
   * before the iteration ends — after the run's last one, nothing would hear them.
   */
  async saveIteration(record: IterationRecord): Promise<boolean> {
    await this.options.workspace?.afterIteration(record);
    const last = this.records.reduce((max, r) => Math.max(max, r.index), -Infinity);
    if (record.index <= last) return false;
    this.log.attach(packRecord(record, this.records.at(-1) ?? null));
    this.records.push(record);
    if (performance.now() - this.lastHeard >= this.heartbeatEvery / 2) await this.log.syncInBackground();
    return true;
  }

  /** The drive is being stopped to wait for the usage limit's reset on a Restate timer: its settle parks the task. */
  parkUntil(wakeAt: number): void {
    this.wakeAt = wakeAt;
  }

  async settle(outcome: RunOutcome): Promise<RunResult> {
    try {
      await this.options.session?.ready?.();
      // The session this drive held; or else the run's own, which an earlier drive of the run may still hold (it
      // lost its lease mid-call): the release frees it for that run's epochs up to this one only.
      const release = this.options.session?.heldSession ?? outcome.sessionId ?? null;
      // The lines and records not sent yet go with it.
      await this.log.flushWith((batch) => this.client.task(this.runId, 'settle', { epoch: this.epoch, ...outcome, ...batch, at: this.serverTime(), wakeAt: this.wakeAt, transcript: this.transcript(), release, unheard: this.unheard }));
    } finally {
      this.abandon();
    }
    return this.result(outcome);
  }

  abandon(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    this.listeners = [];
  }

  private transcript(): TranscriptWrite | null {
    return this.options.session?.takeTranscript() ?? null;
  }

  private lost(): void {
    this.abandon();
    this.options.onLeaseLost();
  }

  private result(outcome: RunOutcome): RunResult {
    return resultFrom({ ...outcome, runId: this.runId, task: this.run.task, store: this.where, records: this.records, latest: this.journal.latest().entry?.snapshot ?? null, agent: this.run.agent });
  }

}
