import type { IterationRecord } from '../../core/types.js';
import { isFinalStatus } from '../../core/statuses.js';
import type { RunOutcome, RunPort } from '../../engine/host.js';
import type { RunResult } from '../../engine/run-result.js';
import type { RunHandle } from '../../store/run-store.js';
import { resultOf } from './result.js';

/**
 * A run in a store folder, as the engine core drives it: `runs/<id>/journal.jsonl` is the journal,
 * `iterations.jsonl` the records, `run.json` how the run stands, `lock` the process driving it.
 */
export class FilesRun implements RunPort {
  constructor(
    private readonly handle: RunHandle,
    private readonly storeDir: string,
  ) {}

  get runId(): string {
    return this.handle.runId;
  }

  get where(): string {
    return this.storeDir;
  }

  get journal() {
    return this.handle.journal;
  }

  begin(): void {
    try {
      this.handle.acquireLock();
      this.handle.update({ status: 'running', reason: '', question: null, finishedAt: null });
    } catch (error) {
      this.abandon();
      throw error;
    }
  }

  saveIteration(record: IterationRecord): boolean {
    return this.handle.appendIteration(record);
  }

  settle(outcome: RunOutcome): RunResult {
    try {
      // iterations.jsonl is written without syncs of its own: durable now that the run rests.
      this.handle.syncIterations();
      this.handle.update({
        ...outcome,
        ...this.handle.totalsFromRecords(),
        finishedAt: isFinalStatus(outcome.status) ? new Date().toISOString() : null,
      });
    } finally {
      this.abandon();
    }
    return resultOf(this.handle, this.storeDir, outcome.question);
  }

  abandon(): void {
    this.handle.releaseLock();
    this.handle.close();
  }
}
