import type { TaskEvent, TaskInput } from '../../../machines/task.machine.js';
import { AccountLimits } from '../../agents/account-limits.js';
import type { Agent } from '../../agents/agent.js';
import { UserError } from '../../core/errors.js';
import type { IterationRecord, RunStatus } from '../../core/types.js';
import { systemClock, type Clock } from '../../engine/clock.js';
import type { CommitStats, EngineHost, JournalPort, RunOutcome, RunPort } from '../../engine/host.js';
import { resultFrom, type RunResult } from '../../engine/run-result.js';
import type { JournalEntry, JournalEvent, JournalStep } from '../../persisted/journal-entry.js';
import type { runChecks } from '../../scoring/checks.js';

/**
 * A host that keeps a run in memory: the journal as a list of entries, the records, how the run stands. It
 * proves the engine core needs nothing of files, and serves tests and scripts that want a run without a store.
 * Entries go through JSON on commit (as a store would keep them), so a run restored from `latest()` sees exactly
 * what survived — and only committed entries survive a "crash" (the entries still queued are lost).
 */
export class MemoryRun implements RunPort {
  readonly journal: MemoryJournal;
  readonly records: IterationRecord[] = [];
  status: RunStatus = 'running';
  reason = '';
  question: string | null = null;
  sessionId: string | null = null;
  private driving = false;

  constructor(
    readonly runId: string,
    readonly input: TaskInput,
    readonly task: { text: string; workdir: string },
  ) {
    this.journal = new MemoryJournal();
  }

  readonly where = 'memory';

  begin(): void {
    if (this.driving) throw new UserError(`run ${this.runId} is already being driven`, 3);
    this.driving = true;
    this.status = 'running';
  }

  saveIteration(record: IterationRecord): boolean {
    if (this.records.some((r) => r.index >= record.index)) return false;
    this.records.push(JSON.parse(JSON.stringify(record)) as IterationRecord);
    return true;
  }

  settle(outcome: RunOutcome): RunResult {
    Object.assign(this, { status: outcome.status, reason: outcome.reason, question: outcome.question, sessionId: outcome.sessionId });
    this.driving = false;
    return this.result();
  }

  abandon(): void {
    this.driving = false;
  }

  /** Where a resumed drive starts: the last committed entry's snapshot, or the input when there is none. */
  restorePoint(event?: TaskEvent): { input: TaskInput; event?: TaskEvent } | { snapshot: unknown; fromSeq: number; event?: TaskEvent } {
    const last = this.journal.latest();
    return last ? { snapshot: last.snapshot, fromSeq: last.seq, event } : { input: this.input, event };
  }

  result(): RunResult {
    const { runId, status, reason, task, sessionId, question, records } = this;
    return resultFrom({ runId, status, reason, task, sessionId, question, records, store: this.where, latest: this.journal.latest()?.snapshot ?? null });
  }

}

/** The journal of a MemoryRun: entries queued by `add`, kept by `commit`; `syncs` counts the durable commits. */
export class MemoryJournal implements JournalPort {
  readonly entries: JournalEntry[] = [];
  private pending: JournalEntry[] = [];
  private seq = 0;
  syncs = 0;

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  add(step: JournalStep): number {
    this.pending.push({ seq: ++this.seq, ...step });
    return this.seq;
  }

  marker(at: number, event: JournalEvent): number {
    this.pending.push({ seq: ++this.seq, at, actor: 'obra', event, task: null, iteration: null, snapshot: undefined });
    return this.seq;
  }

  commit(sync: boolean): CommitStats {
    const text = this.pending.map((entry) => JSON.stringify(entry));
    this.pending = [];
    for (const line of text) this.entries.push(JSON.parse(line) as JournalEntry);
    if (sync && text.length) this.syncs += 1;
    return { lines: text.length, bytes: text.reduce((n, t) => n + t.length, 0), synced: sync && text.length > 0, writeMs: 0, syncMs: 0 };
  }

  restart(): void {
    // Every entry is kept whole: nothing to start again from.
  }

  /** The last committed transition (not a marker). */
  latest(): JournalEntry | null {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.actor !== 'obra') return this.entries[i]!;
    return null;
  }
}

/** A host for one MemoryRun: the agent and the checks given, the system clock unless another is. */
export function memoryHost(run: MemoryRun, options: { agent: Agent; clock?: Clock; runChecks?: typeof runChecks; limits?: AccountLimits }): EngineHost {
  return {
    run,
    clock: options.clock ?? systemClock,
    effects: { agent: options.agent, runChecks: options.runChecks, limits: options.limits ?? new AccountLimits(null) },
  };
}
