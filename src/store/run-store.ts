import { closeSync, existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { LowSync } from 'lowdb';
import { z } from 'zod';
import { UserError } from '../core/errors.js';
import { holderIsAlive, processStart } from '../core/process.js';
import type { IterationRecord, RunStatus, TaskSpec } from '../core/types.js';
import { noUsage, usageOfRecords, type UsageTotals } from '../core/usage-totals.js';
import { runFileSchema, STORE_VERSION, versionAdvice, type NewRun, type RunFile } from '../persisted/run-file.js';
import { finishedIterationsOf, recordBeingPersisted } from '../persisted/snapshot.js';
import { ignoreInCheckout } from './checkout-ignore.js';
import { AppendLog, defaultStoreFs, DurableJsonFile, isNotFound, storeIoError, writeFileDurably, writeFileDurablyAsync, type StoreFs } from './durable-file.js';
import { Journal } from './journal.js';

import type { JournalEntry } from '../persisted/journal-entry.js';

export type { JournalEntry };

/**
 * The StateManager: where runs live on disk (lowdb JSON files, no server).
 *
 *   <dir>/obra-store.json               format marker and version
 *   <dir>/runs/<runId>/run.json         the run's small file (lowdb): task, status, config, the task input
 *   <dir>/runs/<runId>/journal.jsonl    one line per transition: event, states, snapshot (see journal.ts)
 *   <dir>/runs/<runId>/iterations.jsonl one line per finished iteration: prompt, agent output, scores, decision
 *   <dir>/runs/<runId>/lock             the process driving the run (pid, its start time, host)
 *
 * Every write is one small append or one small atomic file of one run, so its cost depends neither on how
 * many runs the store holds nor on how far the run is. run.json is rewritten only when a run starts, comes to
 * rest or ends — never per transition or per iteration.
 */

export { STORE_VERSION, type NewRun, type RunFile } from '../persisted/run-file.js';

const storeMetaSchema = z.object({ format: z.literal('obra-store'), version: z.number().int().positive() });

/** Locks held by this process (a run must not be driven twice by one process either). */
const heldHere = new Set<string>();

export class RunStore {
  private constructor(
    readonly dir: string,
    /** The file-system calls the store makes (node:fs; tests pass a wrapper that records or fails them). */
    readonly fs: StoreFs,
  ) {}

  /** Opens (creating when asked) the store at `dir`; refuses a folder that holds something else. */
  static open(dir: string, options: { create?: boolean; fs?: StoreFs } = {}): RunStore {
    const create = options.create ?? true;
    const fs = options.fs ?? defaultStoreFs;
    const root = resolve(dir);
    const metaPath = join(root, 'obra-store.json');
    const metaFile = new DurableJsonFile(metaPath, storeMetaSchema, versionAdvice('store format'), fs);
    const meta = metaFile.read();
    if (meta === null) {
      if (!create) throw new UserError(`no Obra store at ${root} — run or submit a task first (\`obra run\`, \`obra submit\`), or point --db at the right folder`);
      if (existsSync(root) && readdirSync(root).some((name) => !name.startsWith('.'))) {
        throw new UserError(`${root} is not an Obra store (it holds other files and no obra-store.json) — choose a new or empty folder with --db`);
      }
      try {
        mkdirSync(root, { recursive: true });
      } catch (error) {
        throw storeIoError(error, root, 'create the store at');
      }
      // The marker first: another process opening the folder meanwhile sees a store, never a stray folder.
      metaFile.write({ format: 'obra-store', version: STORE_VERSION });
      mkdirSync(join(root, 'runs'), { recursive: true });
      ignoreInCheckout(root);
    } else {
      const advice = versionAdvice('store format')(meta);
      if (advice) throw new UserError(`${metaPath}: ${advice}; it was left untouched`);
      if (create) {
        mkdirSync(join(root, 'runs'), { recursive: true });
        // A version 2 store gets runs of version 3 from now on: say so first (older Obras then refuse it clearly).
        if (meta.version < STORE_VERSION) metaFile.write({ format: 'obra-store', version: STORE_VERSION });
        // A store made before stores carried their .gitignore gets it too.
        ignoreInCheckout(root);
      }
    }
    return new RunStore(root, fs);
  }

  runDir(runId: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(runId)) throw new UserError(`"${runId}" is not a valid run id (letters, digits, - and _ only)`);
    return join(this.dir, 'runs', runId);
  }

  createRun(file: NewRun): RunHandle {
    const dir = this.makeRunDir(file.runId);
    const handle = new RunHandle(dir, this.fs);
    try {
      handle.create(firstRecord(file));
    } catch (error) {
      rmSync(dir, { recursive: true, force: true }); // our own empty folder: leave nothing half-made behind
      throw error;
    }
    return handle;
  }

  /** `createRun` waiting for the disk off the event loop: a batch of runs is written many at a time. */
  async createRunInBackground(file: NewRun): Promise<void> {
    const dir = this.runDir(file.runId);
    try {
      await mkdir(dir); // fails if it exists: a run is never overwritten
    } catch (error) {
      throw runDirError(error, dir, file.runId, this.dir);
    }
    try {
      await writeFileDurablyAsync(join(dir, 'run.json'), JSON.stringify(firstRecord(file)), this.fs);
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  private makeRunDir(runId: string): string {
    const dir = this.runDir(runId);
    try {
      mkdirSync(dir); // fails if it exists: a run is never overwritten
    } catch (error) {
      throw runDirError(error, dir, runId, this.dir);
    }
    return dir;
  }

  openRun(runId: string): RunHandle {
    const dir = this.runDir(runId);
    if (!existsSync(join(dir, 'run.json'))) {
      throw new UserError(`no run "${runId}" in ${this.dir} — \`obra runs\` lists the runs there`);
    }
    return new RunHandle(dir, this.fs).load();
  }

  /**
   * What a listing shows of a run — its record, its status and its totals — read without opening the run: a
   * run at rest has its totals in run.json; only a running (or killed) one is looked at closer.
   */
  peekRun(runId: string): { file: RunFile; status: RunStatus; iterations: number; totalCostUsd: number } {
    const { file, status } = this.peekStatus(runId);
    if (file.status !== 'running') return { file, status, iterations: file.iterations, totalCostUsd: file.totalCostUsd };
    const handle = new RunHandle(this.runDir(runId), this.fs).load();
    try {
      return { file, status, ...handle.totalsFromRecords() };
    } finally {
      handle.close();
    }
  }

  /** A run's record and status only (run.json and, for a running one, its lock): what a worker's scan needs. */
  peekStatus(runId: string): { file: RunFile; status: RunStatus } {
    const dir = this.runDir(runId);
    const file = new DurableJsonFile(join(dir, 'run.json'), runFileSchema, versionAdvice('run file'), this.fs).read();
    if (!file) throw new UserError(`no run "${runId}" in ${this.dir} — \`obra runs\` lists the runs there`);
    if (file.status !== 'running') return { file, status: file.status };
    const holder = readLockFile(join(dir, 'lock'));
    return { file, status: holder !== null && lockIsLive(holder) ? 'running' : 'interrupted' };
  }

  /** Run ids, newest first (ids start with a timestamp). */
  listRunIds(): string[] {
    try {
      return readdirSync(join(this.dir, 'runs'))
        .filter((name) => !name.startsWith('.'))
        .sort()
        .reverse();
    } catch (error) {
      if (isNotFound(error)) return [];
      throw storeIoError(error, join(this.dir, 'runs'), 'list');
    }
  }
}

/** A run's iterations, cost, and tokens (src/core/usage-totals.ts). */
export interface RunTotals {
  iterations: number;
  totalCostUsd: number;
  usage: UsageTotals;
}

export interface LockInfo {
  pid: number;
  /** The process's start time as the kernel counts it, so a reused pid is not taken for the holder. */
  start: string | null;
  host: string;
  since: string;
}

/** A new run's record as first written. */
function firstRecord(file: NewRun): RunFile {
  return {
    ...file,
    version: STORE_VERSION,
    status: file.status ?? 'running',
    reason: '',
    question: null,
    updatedAt: file.createdAt,
    finishedAt: null,
    iterations: 0,
    totalCostUsd: 0,
  };
}

export class RunHandle {
  private readonly db: LowSync<RunFile>;
  private readonly runFile: DurableJsonFile<RunFile>;
  readonly journal: Journal;
  private readonly journalLog: AppendLog;
  private readonly iterationLog: AppendLog;
  private lastRecorded: number | null = null;

  constructor(
    readonly dir: string,
    private readonly fs: StoreFs = defaultStoreFs,
  ) {
    this.runFile = new DurableJsonFile(join(dir, 'run.json'), runFileSchema, versionAdvice('run file'), fs);
    this.db = new LowSync(this.runFile, null as unknown as RunFile);
    this.journalLog = new AppendLog(join(dir, 'journal.jsonl'), { preallocate: true, fs });
    this.journal = new Journal(this.journalLog.path, fs, this.journalLog);
    this.iterationLog = new AppendLog(join(dir, 'iterations.jsonl'), { fs });
  }

  get runId(): string {
    return this.db.data.runId;
  }

  /** The run's small record, as last read or written. */
  get file(): Readonly<RunFile> {
    return this.db.data;
  }

  /** Reads run.json (a handle is opened before its file is read). */
  load(): this {
    this.db.read();
    return this;
  }

  /** Writes a new run's record (createRun). */
  create(file: RunFile): void {
    this.db.data = file;
    this.db.write();
  }

  update(patch: Partial<RunFile>): void {
    this.patch(patch);
    this.db.write();
  }

  /** `update`, waiting for the disk off the event loop (a worker drives other tasks meanwhile). */
  async updateInBackground(patch: Partial<RunFile>): Promise<void> {
    await this.runFile.writeInBackground(this.patch(patch));
  }

  private patch(patch: Partial<RunFile>): RunFile {
    this.db.data = { ...this.db.data, ...patch, updatedAt: new Date().toISOString() };
    return this.db.data;
  }

  /** Every transition, decoded; with `markers`, the engine's own lines (resume, interruption) too. */
  readJournal(options: { markers?: boolean } = {}): JournalEntry[] {
    return [...this.journal.entries(options)];
  }

  /** The last persisted snapshot: where a resumed run continues from. */
  latestSnapshot(): JournalEntry | null {
    return this.journal.latest().entry;
  }

  /**
   * Appends an iteration record once: re-running `persisting` after a crash must not record it twice. The
   * journal holds the record too (the line entering `persisting` has it as that actor's input), so this copy is
   * written without a sync of its own: `syncIterations` makes it durable when the run comes to rest, and
   * `reconcileIterations` makes it agree with the journal again after a power cut.
   */
  appendIteration(record: IterationRecord): boolean {
    // Records come in index order, so the last index written says what is there (and costs no memory per run).
    this.lastRecorded ??= this.readIterations().at(-1)?.index ?? 0;
    if (record.index <= this.lastRecorded) return false;
    this.iterationLog.write(`${JSON.stringify(record)}\n`);
    this.lastRecorded = record.index;
    return true;
  }

  /** Opens the journal for writing, waiting for the disk off the event loop (iterations.jsonl is made by its first record). */
  async openInBackground(): Promise<void> {
    await this.journalLog.openInBackground();
  }

  /** `appendIteration`, with iterations.jsonl opened (made, for the first record) off the event loop. */
  async appendIterationInBackground(record: IterationRecord): Promise<boolean> {
    await this.iterationLog.openInBackground();
    return this.appendIteration(record);
  }

  async syncIterationsInBackground(): Promise<void> {
    await this.iterationLog.syncInBackground();
  }

  /** The finished iterations, in order. */
  readIterations(): IterationRecord[] {
    return this.iterationLog.readAll<IterationRecord>().sort((a, b) => a.index - b.index);
  }

  /**
   * Makes iterations.jsonl agree with the journal's latest state, which is what a resume goes on from: a record
   * the journal has but the file lost (a power cut after the journal was synced, before the copy was) is put
   * back; a record the journal does not back yet (its iteration will be done again) is dropped. Returns how
   * many records changed.
   */
  reconcileIterations(snapshot: unknown): number {
    const absorbed = finishedIterationsOf(snapshot);
    const persisting = recordBeingPersisted(snapshot);
    const backed = (index: number) => index <= absorbed || persisting?.index === index;
    const records = this.readIterations();
    const kept = records.filter((r) => backed(r.index));
    const have = new Set(kept.map((r) => r.index));
    const missing = absorbed - [...have].filter((i) => i <= absorbed).length;
    if (kept.length === records.length && missing === 0) return 0;
    if (missing > 0) {
      for (const entry of this.journal.entries()) {
        const index = entry.iteration?.index;
        if (entry.iteration?.state !== 'persisting' || index === undefined || index > absorbed || have.has(index)) continue;
        const record = recordBeingPersisted(entry.snapshot);
        if (!record) continue;
        kept.push(record);
        have.add(index);
      }
    }
    kept.sort((a, b) => a.index - b.index);
    this.iterationLog.close();
    writeFileDurably(this.iterationLog.path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''), this.fs);
    this.lastRecorded = null;
    return Math.abs(records.length - kept.length) + missing;
  }

  /** Iterations and cost so far: run.json's totals once the run is at rest, else counted from the records. */
  totals(): RunTotals {
    const file = this.db.data;
    // A run at rest written before run.json kept its usage: counted from its records.
    if (file.status !== 'running' && (file.usage || file.iterations === 0)) return { iterations: file.iterations, totalCostUsd: file.totalCostUsd, usage: file.usage ?? noUsage() };
    return this.totalsFromRecords();
  }

  totalsFromRecords(): RunTotals {
    const records = this.readIterations();
    return { iterations: records.length, totalCostUsd: records.reduce((sum, r) => sum + r.costUsd, 0), usage: usageOfRecords(records) };
  }

  /** The status to show: a run marked running whose driving process is gone was interrupted. */
  effectiveStatus(): RunStatus {
    const status = this.db.data.status;
    if (status !== 'running') return status;
    const holder = this.readLock();
    return holder !== null && lockIsLive(holder) ? 'running' : 'interrupted';
  }

  lockHolder(): number | null {
    return this.readLock()?.pid ?? null;
  }

  readLock(): LockInfo | null {
    return readLockFile(join(this.dir, 'lock'));
  }

  /** Takes the run for this process; refuses while a live process holds it, takes over a dead one's lock. */
  acquireLock(): void {
    const path = join(this.dir, 'lock');
    const refuse = (holder: LockInfo) =>
      new UserError(
        `run ${this.runId} is being driven by process ${holder.pid}${holder.host !== hostname() ? ` on ${holder.host}` : ''} (since ${holder.since}); ` +
          'wait for it to finish, or stop it first (`obra cancel`, or Ctrl-C in its terminal)',
        3,
      );
    if (heldHere.has(this.dir)) throw new UserError(`run ${this.runId} is already being driven by this process`, 3);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (createLockFile(path)) {
        heldHere.add(this.dir);
        return;
      }
      const holder = this.readLock();
      if (holder && lockIsLive(holder)) throw refuse(holder);
      // A stale lock (its process died): take it over under a short-lived mutex, so two processes resuming
      // the same run at once cannot both remove it and both go on.
      const mutex = `${path}.takeover`;
      if (!createLockFile(mutex)) {
        const other = readLockFile(mutex);
        if (other && lockIsLive(other)) throw new UserError(`process ${other.pid} is taking over run ${this.runId} right now`, 3);
        rmSync(mutex, { force: true });
        continue;
      }
      try {
        const again = this.readLock();
        if (again && lockIsLive(again)) throw refuse(again);
        rmSync(path, { force: true });
        if (createLockFile(path)) {
          heldHere.add(this.dir);
          return;
        }
      } finally {
        rmSync(mutex, { force: true });
      }
    }
    throw new UserError(`could not lock run ${this.runId} (other processes keep taking it)`, 3);
  }

  /**
   * `acquireLock` waiting for the disk off the event loop when the run is free (the usual case: a worker driving
   * many runs takes a lock per drive, and making a file is a journaled metadata change); a lock already there
   * is dealt with by `acquireLock` itself.
   */
  async acquireLockInBackground(): Promise<void> {
    if (heldHere.has(this.dir)) throw new UserError(`run ${this.runId} is already being driven by this process`, 3);
    // Claimed in this process before the wait: a second drive of the run here is refused as with `acquireLock`.
    heldHere.add(this.dir);
    let created: boolean;
    try {
      created = await createLockFileAsync(join(this.dir, 'lock'));
    } catch (error) {
      heldHere.delete(this.dir);
      throw error;
    }
    if (created) return;
    heldHere.delete(this.dir);
    this.acquireLock();
  }

  releaseLock(): void {
    heldHere.delete(this.dir);
    const holder = this.readLock();
    if (holder?.pid === process.pid) rmSync(join(this.dir, 'lock'), { force: true });
  }

  /** `releaseLock` waiting for the disk off the event loop. */
  async releaseLockInBackground(): Promise<void> {
    heldHere.delete(this.dir);
    const path = join(this.dir, 'lock');
    const holder = parseLock(await readFile(path, 'utf8').catch(() => null));
    if (holder?.pid === process.pid) await rm(path, { force: true });
  }

  close(): void {
    this.journal.close();
    this.iterationLog.close();
  }

  /** `close` waiting for the disk off the event loop (a drive that settles while other tasks go on). */
  async closeInBackground(): Promise<void> {
    await Promise.all([this.journal.closeInBackground(), this.iterationLog.closeInBackground()]);
  }
}

function ownLockInfo(): string {
  return JSON.stringify(thisProcessLock());
}

/** This process as a lock names its holder (the merge queue's file names its process so too). */
export function thisProcessLock(): LockInfo {
  return { pid: process.pid, start: processStart(process.pid), host: hostname(), since: new Date().toISOString() };
}

function runDirError(error: unknown, dir: string, runId: string, storeDir: string): Error {
  if ((error as NodeJS.ErrnoException).code === 'EEXIST') return new UserError(`run ${runId} already exists in ${storeDir}`);
  return storeIoError(error, dir, 'create the run folder');
}

/** Where this process writes a lock before linking it into place. */
const lockTempOf = (path: string) => `${path}.${process.pid}.tmp`;

/** Creates a lock file with its whole content at once (link of a finished temp file): never half-written. */
function createLockFile(path: string): boolean {
  const temp = lockTempOf(path);
  try {
    const fd = openSync(temp, 'w');
    try {
      writeSync(fd, ownLockInfo());
    } finally {
      closeSync(fd);
    }
    linkSync(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw storeIoError(error, path, 'create the lock');
  } finally {
    rmSync(temp, { force: true });
  }
}

/** `createLockFile` in the thread pool. */
async function createLockFileAsync(path: string): Promise<boolean> {
  const temp = lockTempOf(path);
  try {
    await writeFile(temp, ownLockInfo());
    await link(temp, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw storeIoError(error, path, 'create the lock');
  } finally {
    await rm(temp, { force: true });
  }
}

function readLockFile(path: string): LockInfo | null {
  try {
    return parseLock(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

function parseLock(text: string | null): LockInfo | null {
  if (text === null) return null;
  try {
    const json = JSON.parse(text) as Partial<LockInfo>;
    if (typeof json.pid !== 'number') return null;
    return { pid: json.pid, start: json.start ?? null, host: json.host ?? hostname(), since: json.since ?? '?' };
  } catch {
    return null;
  }
}

/** Whether the lock's process still runs: same pid *and* same start time (pids are reused after a reboot). */
export function lockIsLive(lock: LockInfo): boolean {
  // Another machine's process cannot be told from here: assume it still runs.
  return lock.host !== hostname() || holderIsAlive(lock);
}

export type { TaskSpec };
