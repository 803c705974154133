import type { TaskEvent } from '../../../machines/task.machine.js';
import type { IterationRecord } from '../../core/types.js';
import type { RunOutcome, RunPort } from '../../engine/host.js';
import { resultFrom, type RunResult } from '../../engine/run-result.js';
import type { LineLog } from '../../store/durable-file.js';
import { Journal } from '../../store/journal.js';
import { urlsText, type RestateClient } from './client.js';
import { packLines, packRecord } from './journal-chunk.js';
import type { Claimed, Heartbeat, RemoteRun, TranscriptWrite } from './model.js';

/**
 * A run's journal kept in Restate. Lines are handed over by `write` (kept in this process) and sent, in order,
 * one batch per `syncInBackground` — which the engine awaits before anything leaves the process and when the
 * drive ends (write-ahead, as on the files host). A synchronous `sync` cannot wait for the network: it starts
 * the send, and the next `syncInBackground` waits for it.
 */
export class RestateLog implements LineLog {
  private readonly stored: string[];
  private pending: string[] = [];
  private sending: Promise<unknown> = Promise.resolve();
  private failure: Error | null = null;

  constructor(
    private readonly send: (lines: string[], lastSeq: number, checkpoint: boolean) => Promise<void>,
    tail: string[],
  ) {
    this.stored = [...tail];
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
    // Batches go one after another: Restate keeps them in the order they were written.
    this.sending = this.sending.then(() =>
      this.send(batch.lines, batch.lastSeq, batch.checkpoint).catch((error: unknown) => {
        this.failure = error as Error;
        throw error;
      }),
    );
    await this.sending;
    return true;
  }

  /**
   * The lines not sent yet, as one batch that the caller sends itself (with another write: an iteration's record
   * goes with the lines that led to it, in one call); null when there are none. Call it once `settled()`.
   */
  takeBatch(): { lines: string[]; lastSeq: number; checkpoint: boolean } | null {
    const lines = this.pending;
    if (!lines.length) return null;
    this.pending = [];
    this.stored.push(...lines);
    const lastSeq = Number(/^\{"seq":(\d+)/.exec(lines.at(-1)!)?.[1] ?? 0);
    return { lines, lastSeq, checkpoint: lines.some((line) => line.includes(',"k":"c",')) };
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
  session?: { takeTranscript(): TranscriptWrite | null; transcriptRefused?(): void; readonly heldSession: string | null } | null;
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

  constructor(private readonly options: RestateRunOptions) {
    this.client = options.client;
    this.epoch = options.claimed.epoch;
    this.records = [...options.claimed.iterations];
    this.log = new RestateLog(
      async (lines, lastSeq, checkpoint) =>
        this.heard(await this.client.task<Heartbeat>(this.runId, 'append', { epoch: this.epoch, gz: packLines(lines), lastSeq, checkpoint, leaseMs: options.leaseMs, transcript: this.transcript() })),
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
    const every = Math.max(100, Math.min(2_000, Math.floor(this.options.leaseMs / 3)));
    this.heartbeat = setInterval(() => {
      // The journal's appends and the records renew the lease too: a busy drive needs no heartbeat of its own.
      if (performance.now() - this.lastHeard < every) return;
      this.client
        .task<Heartbeat>(this.runId, 'heartbeat', { epoch: this.epoch, leaseMs: this.options.leaseMs })
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

  /** The iteration's work first (a moving task's commit, pushed), then its record: a recorded iteration's work is never lost. */
  async saveIteration(record: IterationRecord): Promise<boolean> {
    await this.options.workspace?.afterIteration(record);
    // A transcript delta goes on from the one before it: a batch of lines on its way (with one) lands first.
    await this.log.settled();
    // The lines since the last write (the answer's, for a task with no checkout) travel with the record.
    const batch = this.log.takeBatch();
    const lines = batch ? { gz: packLines(batch.lines), lastSeq: batch.lastSeq, checkpoint: batch.checkpoint } : {};
    const saved = await this.client.task<Heartbeat & { fresh: boolean }>(this.runId, 'saveIteration', { epoch: this.epoch, ...lines, packed: packRecord(record), leaseMs: this.options.leaseMs, transcript: this.transcript() });
    if (saved.fresh) this.records.push(record);
    this.heard(saved);
    return saved.fresh;
  }

  /** The drive is being stopped to wait for the usage limit's reset on a Restate timer: its settle parks the task. */
  parkUntil(wakeAt: number): void {
    this.wakeAt = wakeAt;
  }

  async settle(outcome: RunOutcome): Promise<RunResult> {
    try {
      await this.log.syncInBackground();
      // The session this drive held; or else the run's own, which an earlier drive of the run may still hold (it
      // lost its lease mid-call): the release frees it for that run's epochs up to this one only.
      const release = this.options.session?.heldSession ?? outcome.sessionId ?? null;
      await this.client.task(this.runId, 'settle', { epoch: this.epoch, ...outcome, wakeAt: this.wakeAt, transcript: this.transcript(), release, unheard: this.unheard });
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
