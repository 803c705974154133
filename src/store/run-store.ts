import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LowSync } from 'lowdb';
import { z } from 'zod';
import { isAlive } from '../agents/session-lock.js';
import { UserError } from '../core/errors.js';
import type { IterationRecord, RunStatus, TaskSpec } from '../core/types.js';
import { DurableJsonFile, DurableLog } from './durable-file.js';

/**
 * The StateManager: where runs live on disk (lowdb JSON, no server).
 *
 *   <dir>/obra-store.json               format marker + version
 *   <dir>/runs/<runId>/run.json         the run's small live file (lowdb): status, totals, latest checkpoint
 *   <dir>/runs/<runId>/journal.jsonl    one line per transition: the event, the states, the persisted snapshot
 *   <dir>/runs/<runId>/iterations.jsonl one line per finished iteration: the full record (prompt, agent I/O...)
 *   <dir>/runs/<runId>/lock             pid of the process driving the run
 *
 * Every write is one small append or one small atomic file, so its cost does not grow with the number of
 * runs or iterations. Appends are fdatasync'd; run.json is written temp + fsync + rename.
 */

export const STORE_VERSION = 1;

const storeMetaSchema = z.object({ format: z.literal('obra-store'), version: z.number().int() });

export const runFileSchema = z.object({
  version: z.literal(STORE_VERSION),
  runId: z.string(),
  task: z.object({ text: z.string(), workdir: z.string(), checks: z.array(z.string()), requiredMarkers: z.array(z.string()) }),
  status: z.string() as z.ZodType<RunStatus>,
  reason: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().nullable(),
  sessionId: z.string().nullable(),
  iterations: z.number().int(),
  totalCostUsd: z.number(),
  /** The effective config the run started with (resume and replay use it, not today's config). */
  config: z.record(z.string(), z.unknown()),
  /** Enough to rebuild the agent on resume: its name, and for Claude Code the binary and extra env. */
  agent: z.object({ name: z.string(), command: z.string().optional(), env: z.record(z.string(), z.string()).optional() }),
});
export type RunFile = z.infer<typeof runFileSchema>;

/** One line of the journal: a transition of the task or iteration machine. */
export interface JournalEntry {
  seq: number;
  at: number;
  /** Which actor moved: `task` or `iteration`. */
  actor: string;
  /** The event that caused it (type, plus the output of finished actors). */
  event: { type: string; [key: string]: unknown };
  /** The task machine's state value and, when one runs, the iteration's. */
  task: unknown;
  iteration: { index: number; state: unknown } | null;
  /** `actor.getPersistedSnapshot()` of the task machine, including its running iteration. */
  snapshot: unknown;
}

export class RunStore {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens (creating when asked) the store at `dir`, refusing a folder that holds something else. */
  static open(dir: string, options: { create: boolean } = { create: true }): RunStore {
    const root = resolve(dir);
    const metaPath = join(root, 'obra-store.json');
    const meta = new DurableJsonFile(metaPath, storeMetaSchema).read();
    if (meta === null) {
      if (!options.create) throw new UserError(`no Obra store at ${root} — run a task first, or point --db at the right folder`);
      try {
        mkdirSync(join(root, 'runs'), { recursive: true });
        new DurableJsonFile(metaPath, storeMetaSchema).write({ format: 'obra-store', version: STORE_VERSION });
      } catch (error) {
        throw new UserError(`cannot create the store at ${root}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} — choose a writable folder with --db`);
      }
    } else if (meta.version > STORE_VERSION) {
      throw new UserError(`${metaPath} was written by a newer Obra (store version ${meta.version}, this one reads ${STORE_VERSION}); upgrade Obra`);
    }
    return new RunStore(root);
  }

  runDir(runId: string): string {
    if (!/^[A-Za-z0-9_-]+$/.test(runId)) throw new UserError(`"${runId}" is not a valid run id`);
    return join(this.dir, 'runs', runId);
  }

  createRun(file: Omit<RunFile, 'version' | 'updatedAt' | 'finishedAt' | 'iterations' | 'totalCostUsd' | 'status' | 'reason'>): RunHandle {
    const dir = this.runDir(file.runId);
    if (existsSync(dir)) throw new UserError(`run ${file.runId} already exists in ${this.dir}`);
    mkdirSync(dir, { recursive: true });
    const handle = new RunHandle(dir);
    handle.db.data = { ...file, version: STORE_VERSION, status: 'running', reason: '', updatedAt: file.createdAt, finishedAt: null, iterations: 0, totalCostUsd: 0 };
    handle.db.write();
    return handle;
  }

  openRun(runId: string): RunHandle {
    const dir = this.runDir(runId);
    if (!existsSync(join(dir, 'run.json'))) {
      throw new UserError(`no run "${runId}" in ${this.dir} — \`obra runs\` lists the runs there`);
    }
    const handle = new RunHandle(dir);
    handle.db.read();
    return handle;
  }

  /** Run ids, newest first (ids start with a timestamp). */
  listRunIds(): string[] {
    try {
      return readdirSync(join(this.dir, 'runs')).filter((n) => !n.startsWith('.')).sort().reverse();
    } catch {
      return [];
    }
  }
}

export class RunHandle {
  readonly db: LowSync<RunFile>;
  private readonly journal: DurableLog;
  private readonly iterationLog: DurableLog;
  private recordedIterations: Set<number> | null = null;
  private seq: number | null = null;

  constructor(readonly dir: string) {
    this.db = new LowSync(new DurableJsonFile(join(dir, 'run.json'), runFileSchema), null as unknown as RunFile);
    this.journal = new DurableLog(join(dir, 'journal.jsonl'));
    this.iterationLog = new DurableLog(join(dir, 'iterations.jsonl'));
  }

  get runId(): string {
    return this.db.data.runId;
  }

  update(patch: Partial<RunFile>): void {
    this.db.data = { ...this.db.data, ...patch, updatedAt: new Date().toISOString() };
    this.db.write();
  }

  appendJournal(entry: Omit<JournalEntry, 'seq'>): number {
    this.seq ??= this.readJournal().at(-1)?.seq ?? 0;
    this.seq += 1;
    this.journal.append({ seq: this.seq, ...entry });
    return this.seq;
  }

  readJournal(): JournalEntry[] {
    return this.journal.readAll<JournalEntry>();
  }

  /** The last persisted snapshot: where a resumed run continues from. */
  latestSnapshot(): JournalEntry | null {
    return this.readJournal().at(-1) ?? null;
  }

  /** Appends an iteration record once: re-running `persisting` after a crash must not record it twice. */
  appendIteration(record: IterationRecord): boolean {
    this.recordedIterations ??= new Set(this.readIterations().map((r) => r.index));
    if (this.recordedIterations.has(record.index)) return false;
    this.iterationLog.append(record);
    this.recordedIterations.add(record.index);
    return true;
  }

  readIterations(): IterationRecord[] {
    return this.iterationLog.readAll<IterationRecord>();
  }

  /** The status to show: a run marked running whose driving process is gone was interrupted. */
  effectiveStatus(): RunStatus {
    const status = this.db.data.status;
    if (status !== 'running') return status;
    const holder = this.lockHolder();
    return holder !== null && isAlive(holder) ? 'running' : 'interrupted';
  }

  lockHolder(): number | null {
    try {
      const pid = (JSON.parse(readFileSync(join(this.dir, 'lock'), 'utf8')) as { pid?: unknown }).pid;
      return typeof pid === 'number' ? pid : null;
    } catch {
      return null;
    }
  }

  /** Takes the run for this process; refuses while a live process holds it, takes over a dead one's lock. */
  acquireLock(): void {
    const path = join(this.dir, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx');
        writeSync(fd, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
        closeSync(fd);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = this.lockHolder();
        if (holder !== null && holder !== process.pid && isAlive(holder)) {
          throw new UserError(`run ${this.runId} is being driven by process ${holder}; wait for it or stop it first`, 3);
        }
        rmSync(path, { force: true });
      }
    }
    throw new UserError(`could not lock run ${this.runId} (another process is taking it right now)`, 3);
  }

  releaseLock(): void {
    if (this.lockHolder() === process.pid) rmSync(join(this.dir, 'lock'), { force: true });
  }

  close(): void {
    this.journal.close();
    this.iterationLog.close();
  }
}
