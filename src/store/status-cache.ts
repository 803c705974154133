import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { RunStatus } from '../core/types.js';
import type { RunFile } from '../persisted/run-file.js';
import type { RunStore } from './run-store.js';

/** What a worker needs of a run between its looks: its status, and its record when it could start it. */
export interface PeekedStatus {
  status: RunStatus;
  /** When run.json was last written: a run a worker passed over is tried again once this moves. */
  updatedAt: string;
  /** run.json, for a run a worker could start (queued or interrupted); null otherwise (not kept in memory). */
  file: RunFile | null;
}

/**
 * What says a store file changed: its inode, size and times (the store replaces its small files whole, so a
 * rewrite gives a new inode), and when it last changed. A missing file (`optional`) stamps as `-`.
 */
export function fileStamp(paths: { path: string; optional?: boolean }[]): { stamp: string; changedAt: number } {
  let stamp = '';
  let changedAt = 0;
  for (const { path, optional } of paths) {
    const stats = statSync(path, { throwIfNoEntry: !optional });
    stamp += stats ? `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}|` : '-|';
    if (stats) changedAt = Math.max(changedAt, stats.mtimeMs, stats.ctimeMs);
  }
  return { stamp, changedAt };
}

/** A file changed this recently may change again within the same timestamp tick: it is read again, not kept. */
export const SETTLED_MS = 1000;

const DRIVABLE = new Set<RunStatus>(['queued', 'interrupted']);
const peekedOf = ({ file, status }: { file: RunFile; status: RunStatus }): PeekedStatus => ({ status, updatedAt: file.updatedAt, file: DRIVABLE.has(status) ? file : null });

/**
 * `RunStore.peekStatus` for a process that looks at the same runs again and again (a worker waiting for work
 * over a store of thousands of resting runs): run.json is read and checked again only when its stat changed.
 * The store only ever replaces run.json whole (a new file renamed into place), so a change gives it a new
 * inode and ctime. A file changed within the last `settledMs` is read again at every look: a second change in
 * the same timestamp tick could otherwise pass unseen. A running run is never kept: its status also depends on
 * whether the process in its lock still lives.
 */
export class RunStatusCache {
  private readonly known = new Map<string, { stamp: string; peeked: PeekedStatus }>();

  constructor(
    private readonly store: RunStore,
    private readonly options: { settledMs?: number; now?: () => number } = {},
  ) {}

  peek(runId: string): PeekedStatus {
    let stamp: string;
    let changedAt: number;
    try {
      ({ stamp, changedAt } = fileStamp([{ path: join(this.store.runDir(runId), 'run.json') }]));
    } catch {
      // Gone or unreadable: peekStatus says why, in the store's words.
      this.known.delete(runId);
      return peekedOf(this.store.peekStatus(runId));
    }
    const hit = this.known.get(runId);
    if (hit?.stamp === stamp) return hit.peeked;
    const { file, status } = this.store.peekStatus(runId);
    const peeked = peekedOf({ file, status });
    const now = (this.options.now ?? Date.now)();
    // A run whose file says running (driven now, or by a process that died) is looked at again every time.
    if (file.status !== 'running' && now - changedAt >= (this.options.settledMs ?? SETTLED_MS)) this.known.set(runId, { stamp, peeked });
    else this.known.delete(runId);
    return peeked;
  }

  /** Stops keeping a run (it ended for good: it is never looked at again). */
  forget(runId: string): void {
    this.known.delete(runId);
  }

  /** Stops keeping the runs no longer in the store (deleted folders). */
  keepOnly(listed: string[]): void {
    if (this.known.size <= listed.length) return;
    const still = new Set(listed);
    for (const runId of this.known.keys()) if (!still.has(runId)) this.known.delete(runId);
  }

  /** How many runs are kept (tests). */
  get size(): number {
    return this.known.size;
  }
}
