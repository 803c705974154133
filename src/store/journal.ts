import { z } from 'zod';
import { UserError } from '../core/errors.js';
import type { CommitStats, JournalPort } from '../engine/host.js';
import type { JournalEntry, JournalEvent, JournalStep } from '../persisted/journal-entry.js';
import { AppendLog, type LineLog, type StoreFs } from './durable-file.js';
import { SnapshotDecoder, SnapshotEncoder } from './snapshot-codec.js';

/**
 * `runs/<id>/journal.jsonl`: one line per transition of the task or iteration machine, in order.
 *
 *   {"seq":7,"k":"p","at":1795…,"actor":"iteration","task":"running","iteration":{"index":2,"state":"scoring"},
 *    "event":{"type":"xstate.done.actor.0.iteration.validating","output":{…}},"patch":[[["children",…],…]]}
 *
 * `k` is `c` for a checkpoint (the whole persisted snapshot in `checkpoint`), `p` for a patch against the line
 * before (see snapshot-codec.ts; `eventRefs` and `refs` list where a value written before goes), `m` for a marker the engine writes about itself (`obra.resume`,
 * `obra.interrupted`) with no snapshot. Every fourth iteration starts with a checkpoint, so the latest state is
 * found by reading the file backwards to the last checkpoint: the cost does not grow with the run.
 */

const lineSchema = z.object({
  seq: z.number().int().positive(),
  k: z.enum(['c', 'p', 'm']),
  at: z.number(),
  actor: z.enum(['task', 'iteration', 'obra']),
  task: z.unknown().optional(),
  iteration: z.object({ index: z.number().int(), state: z.unknown() }).nullable().optional(),
  event: z.looseObject({ type: z.string() }),
  eventRefs: z.array(z.unknown()).optional(),
  checkpoint: z.unknown().optional(),
  refs: z.array(z.unknown()).optional(),
  patch: z.array(z.unknown()).optional(),
});
type Line = z.infer<typeof lineSchema>;

export type { CommitStats, JournalEntry, JournalEvent, JournalStep };

/** The files host's journal: the JournalPort the engine writes, and the reader every command uses. */
export class Journal implements JournalPort {
  readonly log: LineLog;
  // A whole snapshot at least every 256 lines, whatever happens (a long retry loop); see TransitionRecorder.
  private readonly encoder = new SnapshotEncoder(256);
  private seq: number | null = null;
  private pending: string[] = [];
  private pendingBytes = 0;
  /** The last transition this process queued, as the engine gave it (what its line decodes to), and its number. */
  private lastStep: JournalStep | null = null;
  private lastStepSeq = 0;
  /**
   * What `latest` would read back once lines of this process are in the log: its last transition and the last
   * line's number — a drive that settles computes its result without reading and decoding its journal again.
   */
  private written: { step: JournalStep; seq: number; lastSeq: number } | null = null;

  constructor(
    /** The file, or (another host's journal) the words naming it in messages. */
    readonly path: string,
    fs?: StoreFs,
    log?: LineLog,
  ) {
    this.log = log ?? new AppendLog(path, { preallocate: true, fs });
  }

  /** The last sequence number written (read once from the end of the file). */
  lastSeq(): number {
    if (this.seq === null) {
      this.seq = 0;
      for (const text of this.log.linesFromEnd()) {
        this.seq = parseLine(text, this.path, 'the last line').seq;
        break;
      }
    }
    return this.seq;
  }

  /** Encodes a transition and queues it for the next `commit`; returns its sequence number. */
  add(step: JournalStep, options: { checkpoint?: boolean } = {}): number {
    const seq = this.lastSeq() + 1;
    const encoded = this.encoder.encode(step.event, step.snapshot, options);
    const iteration = step.iteration ? JSON.stringify({ index: step.iteration.index, state: step.iteration.state }) : 'null';
    const body = encoded.kind === 'checkpoint' ? `"checkpoint":${encoded.body}${encoded.refs ? `,"refs":${encoded.refs}` : ''}` : `"patch":${encoded.body}`;
    this.queue(
      `{"seq":${seq},"k":"${encoded.kind === 'checkpoint' ? 'c' : 'p'}","at":${step.at},"actor":"${step.actor}",` +
        `"task":${JSON.stringify(step.task ?? null)},"iteration":${iteration},"event":${encoded.event},` +
        `${encoded.eventRefs ? `"eventRefs":${encoded.eventRefs},` : ''}${body}}\n`,
    );
    this.seq = seq;
    this.lastStep = step;
    this.lastStepSeq = seq;
    return seq;
  }

  /** Queues a line about the engine itself (no state change). */
  marker(at: number, event: JournalEvent): number {
    const seq = this.lastSeq() + 1;
    this.queue(`${JSON.stringify({ seq, k: 'm', at, actor: 'obra', event })}\n`);
    this.seq = seq;
    return seq;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /**
   * Hands the queued lines to the kernel in one write (from then on a killed process cannot lose them) and,
   * when `sync`, makes everything written so far durable with one fdatasync (group commit).
   */
  commit(sync: boolean): CommitStats {
    const lines = this.pending.length;
    const bytes = this.pendingBytes;
    let writeMs = 0;
    let syncMs = 0;
    if (lines) {
      const text = lines === 1 ? this.pending[0]! : this.pending.join('');
      this.pending = [];
      this.pendingBytes = 0;
      const t0 = performance.now();
      this.log.write(text);
      writeMs = performance.now() - t0;
      if (this.lastStep) this.written = { step: this.lastStep, seq: this.lastStepSeq, lastSeq: this.seq ?? 0 };
    }
    let synced = false;
    if (sync) {
      const t1 = performance.now();
      synced = this.log.sync();
      syncMs = performance.now() - t1;
    }
    return { lines, bytes, synced, writeMs, syncMs };
  }

  /**
   * `commit(true)` with the fdatasync in libuv's thread pool: the queued lines are written now (a killed process
   * cannot lose them), and the promise resolves once everything written so far is durable.
   */
  async commitInBackground(): Promise<CommitStats> {
    const written = this.commit(false);
    const t1 = performance.now();
    const synced = await this.log.syncInBackground();
    return { ...written, synced, syncMs: performance.now() - t1 };
  }

  /** Starts the next line from a whole snapshot (after a restore, the encoder knows no previous state). */
  restart(): void {
    this.encoder.reset();
  }

  close(): void {
    this.log.close();
  }

  async closeInBackground(): Promise<void> {
    if (this.log.closeInBackground) await this.log.closeInBackground();
    else this.log.close();
  }

  private queue(line: string): void {
    this.pending.push(line);
    this.pendingBytes += line.length;
  }

  /** Every transition from the start, decoded (markers too when asked). */
  *entries(options: { markers?: boolean } = {}): Generator<JournalEntry> {
    const decoder = new SnapshotDecoder();
    let previousSeq = 0;
    for (const { text, number } of this.log.readLines()) {
      const where = `line ${number}`;
      const line = parseLine(text, this.path, where);
      if (line.seq <= previousSeq) throw badJournal(this.path, where, `sequence number ${line.seq} after ${previousSeq} (lines out of order or repeated)`);
      previousSeq = line.seq;
      const entry = decodeLine(line, decoder, this.path, where);
      if (entry.actor !== 'obra' || options.markers) yield entry;
    }
  }

  /** The latest state and the last sequence number, reading only the lines since the last checkpoint. */
  latest(): { entry: JournalEntry | null; lastSeq: number } {
    if (this.written) {
      const { step, seq, lastSeq } = this.written;
      const iteration = step.iteration ? { index: step.iteration.index, state: step.iteration.state } : null;
      return { entry: { seq, at: step.at, actor: step.actor, event: step.event, task: step.task ?? null, iteration, snapshot: step.snapshot }, lastSeq };
    }
    const newestFirst: Line[] = [];
    let lastSeq = 0;
    for (const text of this.log.linesFromEnd()) {
      const line = parseLine(text, this.path, newestFirst.length ? `the line before seq ${newestFirst.at(-1)!.seq}` : 'the last line');
      if (!newestFirst.length) lastSeq = line.seq;
      newestFirst.push(line);
      if (line.k === 'c') break;
    }
    if (!newestFirst.length) return { entry: null, lastSeq: 0 };
    if (newestFirst.at(-1)!.k !== 'c') {
      if (newestFirst.every((l) => l.k === 'm')) return { entry: null, lastSeq };
      throw badJournal(this.path, 'its first line', 'no checkpoint to start from (the start of the file is missing)');
    }
    const decoder = new SnapshotDecoder();
    let entry: JournalEntry | null = null;
    for (let i = newestFirst.length - 1; i >= 0; i--) {
      const line = newestFirst[i]!;
      const decoded = decodeLine(line, decoder, this.path, `seq ${line.seq}`);
      if (decoded.actor !== 'obra') entry = decoded;
    }
    return { entry, lastSeq };
  }
}

function parseLine(text: string, path: string, where: string): Line {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw badJournal(path, where, 'not valid JSON (edited by hand?)');
  }
  // The common case checked by hand (replay reads thousands of lines); zod explains anything else.
  if (looksLikeLine(json)) return json;
  const parsed = lineSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badJournal(path, where, `not a journal entry (${issue?.path.join('.') || 'the top level'}: ${issue?.message})`);
  }
  return parsed.data;
}

function looksLikeLine(json: unknown): json is Line {
  const line = json as Record<string, unknown> | null;
  if (!line || typeof line !== 'object') return false;
  const event = line.event as { type?: unknown } | null;
  const iteration = line.iteration as { index?: unknown } | null | undefined;
  return (
    typeof line.seq === 'number' && Number.isInteger(line.seq) && line.seq > 0 &&
    (line.k === 'c' || line.k === 'p' || line.k === 'm') &&
    typeof line.at === 'number' &&
    (line.actor === 'task' || line.actor === 'iteration' || line.actor === 'obra') &&
    typeof event === 'object' && event !== null && typeof event.type === 'string' &&
    (iteration === undefined || iteration === null || (typeof iteration === 'object' && Number.isInteger(iteration.index))) &&
    (line.patch === undefined || Array.isArray(line.patch))
  );
}

function decodeLine(line: Line, decoder: SnapshotDecoder, path: string, where: string): JournalEntry {
  const base = { seq: line.seq, at: line.at, actor: line.actor, task: line.task ?? null };
  const iteration = line.iteration ? { index: line.iteration.index, state: line.iteration.state } : null;
  if (line.k === 'm') return { ...base, iteration, event: line.event as JournalEvent, snapshot: decoder.state };
  try {
    const { event, state } = decoder.apply(line.event, line.k === 'c' ? { eventRefs: line.eventRefs, checkpoint: line.checkpoint, refs: line.refs } : { eventRefs: line.eventRefs, patch: line.patch });
    return { ...base, iteration, event: event as JournalEvent, snapshot: state };
  } catch (error) {
    throw badJournal(path, where, `cannot be decoded: ${(error as Error).message}`);
  }
}

function badJournal(path: string, where: string, what: string): UserError {
  return new UserError(`${path}: ${where} is ${what}; the file was left untouched`);
}
