import type { QueueEntry } from '../persisted/run-file.js';
import type { RunStore } from '../store/run-store.js';

/**
 * A landing, in the task's record: `obra status` shows it merged (`queue.merged`), and the overlap warnings
 * leave it out. `at` is shared when one landing is recorded for several runs (a task and its resolution).
 */
export function recordMerged(store: RunStore, runId: string, commit: string, at = new Date().toISOString()): void {
  const handle = store.openRun(runId);
  try {
    handle.update({ queue: { ...(handle.file.queue as QueueEntry), merged: { commit, at } } });
  } finally {
    handle.close();
  }
}
