import { join } from 'node:path';
import type { RunStatus } from '../core/types.js';
import type { RunFile } from '../persisted/run-file.js';
import type { RunStore } from './run-store.js';
import { StampedCache } from './stamped-cache.js';

/** What a worker needs of a run between its looks: its status, and its record when it could start it. */
export interface PeekedStatus {
  status: RunStatus;
  /** When run.json was last written: a run a worker passed over is tried again once this moves. */
  updatedAt: string;
  /** run.json, for a run a worker could start (queued or interrupted); null otherwise (not kept in memory). */
  file: RunFile | null;
  /** The race it is an attempt of, or null (an ended attempt may leave its race to be decided). */
  raceId: string | null;
}

const DRIVABLE = new Set<RunStatus>(['queued', 'interrupted']);
const peekedOf = ({ file, status }: { file: RunFile; status: RunStatus }): PeekedStatus => ({ status, updatedAt: file.updatedAt, file: DRIVABLE.has(status) ? file : null, raceId: file.queue?.race?.id ?? null });

/**
 * `RunStore.peekStatus` for a process that looks at the same runs again and again (a worker waiting for work
 * over a store of thousands of resting runs): run.json is read and checked again only when its stat changed
 * (see StampedCache). A run whose file says running is never kept: its status also depends on whether the
 * process in its lock still lives.
 */
export class RunStatusCache {
  private readonly known: StampedCache<{ peeked: PeekedStatus; fileSaysRunning: boolean }>;

  constructor(
    private readonly store: RunStore,
    options: { now?: () => number } = {},
  ) {
    this.known = new StampedCache(options.now);
  }

  /** Throws as `peekStatus` does for a run gone or unreadable. */
  peek(runId: string): PeekedStatus {
    const read = () => {
      const fresh = this.store.peekStatus(runId);
      return { peeked: peekedOf(fresh), fileSaysRunning: fresh.file.status === 'running' };
    };
    return this.known.get(runId, [{ path: join(this.store.runDir(runId), 'run.json') }], read, (value) => !value.fileSaysRunning).peeked;
  }

  /** Stops keeping a run (it ended for good: it is never looked at again). */
  forget(runId: string): void {
    this.known.delete(runId);
  }

  /** Stops keeping the runs no longer in the store (deleted folders). */
  keepOnly(listed: string[]): void {
    this.known.keepOnly(listed);
  }

  /** How many runs are kept (tests). */
  get size(): number {
    return this.known.size;
  }
}
