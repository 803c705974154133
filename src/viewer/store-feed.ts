import { existsSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { StatusLine } from '../core/status-line.js';
import type { RunStatus } from '../core/statuses.js';
import { lineOf, RaceRanking, waitingNow, withConflicts, type ReadLine } from '../queue/board.js';
import { conflictsOf, type OverlapTask } from '../queue/overlap.js';
import { EVENT_LOG } from '../store/event-log.js';
import { fileStamp } from '../store/stamped-cache.js';
import type { RunStore } from '../store/run-store.js';
import { actionsFor, type RunAction } from './actions-for.js';

/**
 * The board's index of a store, kept by `obra view` once for all its pages: every run's line, read once at the
 * start and again only when the run's folder changes (fs.watch on `runs/` and on each run's folder, changes
 * gathered for `debounceMs`). Open pages subscribe: the board gets the lines that changed, a run page is told
 * when its run's events log or its files change. Nothing is polled for an idle store but the few runs said to
 * be running (whether their process still lives is not written anywhere) and, should the system run out of
 * watches, the runs it could not watch.
 */

/** A card on the board: the task's status line, the agent it runs with and what can be done to it now. */
export interface BoardTask extends StatusLine {
  agent: string;
  actions: RunAction[];
}

export interface BoardChange {
  tasks: BoardTask[];
  removed: string[];
}

export type RunChange = 'events' | 'run';

const SWEEP_MS = 2000;

/** A run as the index keeps it: as read, and its card (made once per read, not per look). */
type Indexed = ReadLine & { task: BoardTask };

export class StoreFeed {
  /** Goes up with every change the pages were told of: what was computed from the index at one version still holds. */
  version = 0;
  private readonly index = new Map<string, Indexed>();
  private readonly watchers = new Map<string, FSWatcher>();
  /** Runs whose folder could not be watched (no inotify watches left): compared by their files' stamps. */
  private readonly unwatched = new Map<string, string>();
  private readonly boardListeners = new Set<(change: BoardChange) => void>();
  private readonly runListeners = new Map<string, Set<(change: RunChange) => void>>();
  private readonly pending = new Set<string>();
  private rootWatcher: FSWatcher | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly ranking: RaceRanking;
  /** The conflicts each run's card was last drawn with: another run's change can change them. */
  private readonly drawnConflicts = new Map<string, string>();

  /** A run's status as the index has it (null: not there, or unreadable): what a queued card waits on. */
  private readonly statusOf = (runId: string): RunStatus | null => {
    const line = this.index.get(runId)?.line;
    return line && line.status !== 'unreadable' ? line.status : null;
  };

  constructor(
    private readonly store: RunStore,
    private readonly options: { debounceMs?: number } = {},
  ) {
    this.ranking = new RaceRanking(store);
  }

  /** Reads every run's line and starts watching. */
  start(): this {
    const runsDir = join(this.store.dir, 'runs');
    try {
      this.rootWatcher = watch(runsDir, (_type, name) => {
        if (name && !name.startsWith('.')) this.changed(name.toString());
      });
      this.rootWatcher.on('error', () => {});
    } catch {
      // No watch on the runs folder: the sweep looks for new runs.
      this.rootWatcher = null;
    }
    for (const runId of this.store.listRunIds()) this.add(runId);
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
    return this;
  }

  /** Every task, with what queued ones wait for worked out now. */
  tasks(now = Date.now()): BoardTask[] {
    const out: BoardTask[] = [];
    for (const [runId, read] of this.index) out.push(this.cardNow(runId, read, now));
    const warned = withConflicts(out, this.overlaps());
    for (const task of warned) this.drawnConflicts.set(task.runId, JSON.stringify(task.conflicts));
    return warned;
  }

  /**
   * A run's card now: the one made when it was read, but for a queued task (or a done one whose conflict an agent
   * resolves), whose card changes without its files changing: what it waits for depends on another run.
   */
  private cardNow(runId: string, read: Indexed, now: number): BoardTask {
    return read.line.status === 'queued' || read.line.resolvedBy ? this.taskOf(runId, read, this.statusOf, now) : read.task;
  }

  /**
   * Every run's card as last read, not worked out again: what the board's counts and spend need (a card
   * tasks() works out again keeps its column, cost, agent and day).
   */
  cards(): BoardTask[] {
    return [...this.index.values()].map((read) => read.task);
  }

  /** Every worktree task's branch and what its last overlap check found (src/queue/overlap.ts). */
  private overlaps(): OverlapTask[] {
    const out: OverlapTask[] = [];
    for (const [runId, read] of this.index) if (read.line.branch) out.push({ runId, branch: read.line.branch, open: read.line.branchOutcome === null, record: read.overlap });
    return out;
  }

  onBoard(listener: (change: BoardChange) => void): () => void {
    this.boardListeners.add(listener);
    return () => this.boardListeners.delete(listener);
  }

  onRun(runId: string, listener: (change: RunChange) => void): () => void {
    let set = this.runListeners.get(runId);
    if (!set) this.runListeners.set(runId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (!set.size) this.runListeners.delete(runId);
    };
  }

  /** A change this process made (an API action): told at once, not when the watch says so. */
  touch(runId: string): void {
    this.changed(runId);
  }

  close(): void {
    this.closed = true;
    this.rootWatcher?.close();
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.boardListeners.clear();
    this.runListeners.clear();
  }

  private taskOf(runId: string, read: ReadLine, statusOf: (runId: string) => RunStatus | null, now: number): BoardTask {
    const line = read.line;
    const ranked = this.ranking.rank(line);
    return { ...ranked, waitingFor: waitingNow(read, statusOf), ageMs: line.createdAt ? now - Date.parse(line.createdAt) : 0, agent: line.agent ?? '?', actions: actionsFor(line) };
  }

  private add(runId: string): void {
    this.read(runId);
    if (this.watchers.has(runId) || this.unwatched.has(runId)) return;
    const dir = this.store.runDir(runId);
    try {
      const watcher = watch(dir, (_type, name) => {
        if (name?.toString() === EVENT_LOG) this.tellRun(runId, 'events');
        else this.changed(runId);
      });
      watcher.on('error', () => this.forget(runId));
      this.watchers.set(runId, watcher);
    } catch {
      this.unwatched.set(runId, this.stampOf(runId));
    }
  }

  private read(runId: string): void {
    let read: ReadLine;
    try {
      read = lineOf(this.store, runId);
    } catch (error) {
      // Half made (its run.json not written yet) or removed: a later change or the sweep reads it again.
      if (!this.index.has(runId)) return;
      // Its agent as its card shows it: not known while the run cannot be read.
      const line: StatusLine = { ...this.index.get(runId)!.line, status: 'unreadable', reason: (error as Error).message, column: 'failed', agent: null };
      read = { line, fileStatus: 'failed', after: null, overlap: null };
    }
    this.index.set(runId, { ...read, task: this.taskOf(runId, read, () => null, Date.now()) });
  }

  private forget(runId: string): void {
    this.watchers.get(runId)?.close();
    this.watchers.delete(runId);
    this.unwatched.delete(runId);
    this.index.delete(runId);
  }

  private changed(runId: string): void {
    if (this.closed) return;
    this.pending.add(runId);
    this.flushTimer ??= setTimeout(() => this.flush(), this.options.debounceMs ?? 50);
  }

  private flush(): void {
    this.flushTimer = null;
    const ids = [...this.pending];
    this.pending.clear();
    const tasks: BoardTask[] = [];
    const removed: string[] = [];
    const now = Date.now();
    for (const runId of ids) {
      if (!existsSync(this.store.runDir(runId))) {
        if (this.index.has(runId)) removed.push(runId);
        this.forget(runId);
        continue;
      }
      const before = this.index.get(runId);
      if (!this.watchers.has(runId) && !this.unwatched.has(runId)) this.add(runId);
      else this.read(runId);
      const after = this.index.get(runId);
      // The sweep reads running runs again: only a line that changed is news.
      if (!after || (before && JSON.stringify(before.line) === JSON.stringify(after.line))) continue;
      tasks.push(this.cardNow(runId, after, now));
      this.tellRun(runId, 'run');
    }
    // A branch's overlap check warns both tasks of a pair: the other one's card changes too.
    const pushed = new Set(tasks.map((t) => t.runId));
    const conflicts = conflictsOf(this.overlaps());
    for (const [runId, read] of this.index) {
      const found = JSON.stringify(conflicts.get(runId) ?? []);
      if (!pushed.has(runId) && (this.drawnConflicts.get(runId) ?? '[]') !== found) tasks.push(read.task);
    }
    for (let i = 0; i < tasks.length; i++) {
      const task = { ...tasks[i]!, conflicts: conflicts.get(tasks[i]!.runId) ?? [] };
      tasks[i] = task;
      this.drawnConflicts.set(task.runId, JSON.stringify(task.conflicts));
    }
    if (!tasks.length && !removed.length) return;
    this.version++;
    for (const listener of this.boardListeners) listener({ tasks, removed });
  }

  private tellRun(runId: string, change: RunChange): void {
    for (const listener of this.runListeners.get(runId) ?? []) listener(change);
  }

  private stampOf(runId: string): string {
    const dir = this.store.runDir(runId);
    try {
      return fileStamp([{ path: join(dir, 'run.json'), optional: true }, { path: join(dir, 'journal.jsonl'), optional: true }, { path: join(dir, EVENT_LOG), optional: true }]).stamp;
    } catch {
      return '';
    }
  }

  /** Runs said to be running (is their process alive?), runs without a watch, and new runs when `runs/` has none. */
  private sweep(): void {
    for (const [runId, read] of this.index) if (read.fileStatus === 'running') this.changed(runId);
    for (const [runId, stamp] of this.unwatched) {
      const now = this.stampOf(runId);
      if (now !== stamp) {
        this.unwatched.set(runId, now);
        this.tellRun(runId, 'events');
        this.changed(runId);
      }
    }
    if (!this.rootWatcher) for (const runId of this.store.listRunIds()) if (!this.index.has(runId)) this.changed(runId);
  }
}
