import type { IterationRecord } from '../core/types.js';
import type { JournalEntry } from '../persisted/journal-entry.js';
import { recordBeingPersisted } from '../persisted/snapshot.js';
import { RECORD_SUMMARY } from '../engine/recorder.js';
import type { ReplayDivergence } from './replay.js';

/**
 * Checks the stored iteration records (iterations.jsonl, or Restate's) against the journal, which is the one
 * truth: every iteration the journal finished has exactly its record, with the same decision, session, states,
 * retry delays... and no record stands for an iteration the journal never finished (but the one a `persisting`
 * in flight was saving). A record written twice, or saved for a call the journal later made again, shows here.
 */
const SIDES = { expected: 'journal', actual: 'stored record' };

export class FinishedIterations {
  private readonly finished = new Map<number, { seq: number; at: number; summary: Record<string, unknown> }>();
  /**
   * Records whose save the journal shows in flight (an active `persistIteration`): the answer was durable, the
   * record may be kept although the iteration never finished in the journal (the run was cancelled, or a worker
   * died, during the save).
   */
  private readonly saving = new Map<number, Record<string, unknown>>();

  /** Takes the journal's entries one by one, in order (replay reads them once). */
  see(entry: JournalEntry): void {
    if (entry.actor === 'obra') return;
    const beingSaved = recordBeingPersisted(entry.snapshot);
    if (beingSaved) this.saving.set(beingSaved.index, beingSaved as unknown as Record<string, unknown>);
    const output = entry.event.type === 'xstate.done.actor.iteration' ? (entry.event.output as Record<string, unknown> | undefined) : undefined;
    // A suspended iteration (usage limit, decision `wait`) is done again later and has no record.
    if (output && output.decision !== 'wait') this.finished.set(Number(output.index), { seq: entry.seq, at: entry.at, summary: output });
  }

  /** The first way the records disagree with the journal seen, or null. */
  divergence(records: readonly IterationRecord[]): ReplayDivergence | null {
    const byIndex = new Map<number, IterationRecord[]>();
    for (const record of records) byIndex.set(record.index, [...(byIndex.get(record.index) ?? []), record]);
    for (const [index, kept] of byIndex) {
      if (kept.length > 1) return { seq: null, at: null, sides: SIDES, what: `the record of iteration ${index}`, expected: 'one record', actual: `${kept.length} records` };
      if (!this.finished.has(index) && !this.saving.has(index)) {
        return { seq: null, at: null, sides: SIDES, what: `the record of iteration ${index}`, expected: 'no record (the journal never finished that iteration)', actual: `a record (decision ${JSON.stringify(kept[0]!.decision)})` };
      }
    }
    const expected: [number, { seq: number | null; at: number | null; summary: Record<string, unknown> }][] = [
      ...this.finished,
      // A save in flight whose iteration never finished: its record, when kept, is the one being saved.
      ...[...this.saving].filter(([index]) => !this.finished.has(index) && byIndex.has(index)).map(([index, summary]) => [index, { seq: null, at: null, summary }] as [number, { seq: null; at: null; summary: Record<string, unknown> }]),
    ];
    for (const [index, { seq, at, summary }] of expected) {
      const record = byIndex.get(index)?.[0] as unknown as Record<string, unknown> | undefined;
      if (!record) return { seq, at, sides: SIDES, what: `the record of iteration ${index}`, expected: 'a record (the journal finished that iteration)', actual: 'none' };
      for (const field of RECORD_SUMMARY) {
        const journal = JSON.stringify(summary[field] ?? null);
        const stored = JSON.stringify(record[field] ?? null);
        if (journal !== stored) return { seq, at, sides: SIDES, what: `the record of iteration ${index}: ${field}`, expected: journal, actual: stored };
      }
    }
    return null;
  }
}
