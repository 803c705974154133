import { z } from 'zod';

/**
 * A journal entry: one transition of the task or iteration machine (or a marker the engine writes about itself),
 * with the persisted snapshot of the whole run after it. How entries are encoded on disk (whole snapshots and
 * patches) is the files host's business (src/store/journal.ts); this is what every host stores and reads back.
 */

export type JournalActor = 'task' | 'iteration' | 'obra';

/** The event of a transition, kept small: its type, plus the output (or error) of a finished actor. */
export type JournalEvent = { type: string; [key: string]: unknown };

export const journalEntrySchema = z.object({
  seq: z.number().int().positive(),
  at: z.number(),
  /** Which actor moved: `task` or `iteration`; `obra` for the engine's own markers (`obra.resume`, `obra.interrupted`). */
  actor: z.enum(['task', 'iteration', 'obra']),
  event: z.looseObject({ type: z.string() }),
  /** The task machine's state value, and the running iteration's index and state. */
  task: z.unknown(),
  iteration: z.object({ index: z.number().int(), state: z.unknown() }).nullable(),
  /** `getPersistedSnapshot()` of the task machine (with its running iteration) after the transition. */
  snapshot: z.unknown(),
});

export interface JournalEntry {
  seq: number;
  at: number;
  actor: JournalActor;
  event: JournalEvent;
  task: unknown;
  iteration: { index: number; state: unknown } | null;
  snapshot: unknown;
}

/** One transition as the engine records it (the journal adds the sequence number). */
export interface JournalStep {
  at: number;
  actor: Exclude<JournalActor, 'obra'>;
  event: JournalEvent;
  task: unknown;
  iteration: { index: number; state: unknown } | null;
  snapshot: unknown;
}
