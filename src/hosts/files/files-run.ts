import type { IterationRecord } from '../../core/types.js';
import { isFinalStatus } from '../../core/statuses.js';
import type { RunOutcome, RunPort } from '../../engine/host.js';
import type { RunResult } from '../../engine/run-result.js';
import type { RunHandle } from '../../store/run-store.js';
import { resultOf } from './result.js';
import { UserError } from '../../core/errors.js';

/**
 * A run in a store folder, as the engine core drives it: `runs/<id>/journal.jsonl` is the journal,
 * `iterations.jsonl` the records, `run.json` how the run stands, `lock` the process driving it.
 */
export class FilesRun implements RunPort {
  /** run.json as this process read it before it decided to drive the run. */
  private readonly seenUpdatedAt: string;
  /** Whether this drive took the run's lock: only then is it this drive's to let go. */
  private locked = false;

  constructor(
    private readonly handle: RunHandle,
    private readonly storeDir: string,
    private readonly workspace: { prepare(): Promise<unknown>; afterIteration(record: IterationRecord): Promise<unknown> } | null = null,
  ) {
    this.seenUpdatedAt = handle.file.updatedAt;
  }

  get runId(): string {
    return this.handle.runId;
  }

  get where(): string {
    return this.storeDir;
  }

  get journal() {
    return this.handle.journal;
  }

  /** A worktree task's save commits the agent's work: its answer must be durable before (see RunPort). */
  get savesOutside(): boolean {
    return this.workspace !== null;
  }

  /**
   * The run's lock first: whoever holds it alone prepares the worktree (two workers may race for a run). Then
   * run.json again: when another process drove the run between our reading it and our lock (a worker that took
   * it first and finished), what we read is stale and the run is not driven again.
   */
  async begin(): Promise<void> {
    try {
      await this.handle.acquireLockInBackground();
      this.locked = true;
      if (this.handle.load().file.updatedAt !== this.seenUpdatedAt) {
        throw new UserError(`run ${this.runId} was driven by another process meanwhile (it is ${this.handle.file.status} now); it was not driven again`, 3);
      }
      await this.workspace?.prepare();
      await this.handle.openInBackground();
      await this.handle.updateInBackground({ status: 'running', reason: '', question: null, finishedAt: null });
    } catch (error) {
      this.abandon();
      throw error;
    }
  }

  /** The record, then (for a worktree task) a commit of what the iteration changed. */
  async saveIteration(record: IterationRecord): Promise<boolean> {
    const fresh = await this.handle.appendIterationInBackground(record);
    await this.workspace?.afterIteration(record);
    return fresh;
  }

  async settle(outcome: RunOutcome): Promise<RunResult> {
    try {
      // iterations.jsonl is written without syncs of its own: durable now that the run rests.
      await Promise.all([
        this.handle.syncIterationsInBackground(),
        this.handle.updateInBackground({
          ...outcome,
          ...this.handle.totalsFromRecords(),
          finishedAt: isFinalStatus(outcome.status) ? new Date().toISOString() : null,
        }),
      ]);
    } catch (error) {
      this.abandon();
      throw error;
    }
    // Closed (its zeros cut off) before the lock is let go: a process that takes the run next writes after them.
    await this.handle.closeInBackground();
    this.locked = false;
    await this.handle.releaseLockInBackground();
    return resultOf(this.handle, this.storeDir, outcome.question);
  }

  abandon(): void {
    this.handle.close();
    // A drive refused the lock (another drive of this process holds the run) must not take it from that one.
    if (this.locked) this.handle.releaseLock();
    this.locked = false;
  }
}
