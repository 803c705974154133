import { z } from 'zod';
import { RUN_STATUSES } from '../core/statuses.js';

/**
 * The run's small record (`run.json` for the files host): what the run is, how it stands, and what a resume or a
 * replay starts from. Rewritten only when a run starts, comes to rest or ends — never per transition.
 */

/** The store's format version: a file of another version is named and left alone. */
export const STORE_VERSION = 2;

export const taskSpecSchema = z.object({ text: z.string(), workdir: z.string(), checks: z.array(z.string()), requiredMarkers: z.array(z.string()) });

export const runFileSchema = z.object({
  version: z.literal(STORE_VERSION),
  runId: z.string().regex(/^[A-Za-z0-9_-]+$/),
  task: taskSpecSchema,
  status: z.enum(RUN_STATUSES),
  reason: z.string(),
  /** The question put to a human while the run waits in `awaitingHuman`. */
  question: z.string().nullable().default(null),
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().nullable(),
  sessionId: z.string().nullable(),
  /** Totals as of the last time the run came to rest (a live run's are counted from iterations.jsonl). */
  iterations: z.number().int(),
  totalCostUsd: z.number(),
  /** The effective config the run started with (resume and replay use it, not today's config). */
  config: z.record(z.string(), z.unknown()),
  /** The task machine's input: replay starts the machines from it. */
  input: z.record(z.string(), z.unknown()),
  /** Enough to rebuild the agent on resume: its name, and for Claude Code the binary and extra env. */
  agent: z.object({ name: z.string(), command: z.string().optional(), env: z.record(z.string(), z.string()).optional() }),
});
export type RunFile = z.infer<typeof runFileSchema>;
export type NewRun = Omit<RunFile, 'version' | 'updatedAt' | 'finishedAt' | 'iterations' | 'totalCostUsd' | 'status' | 'reason' | 'question'>;

/** Says what is wrong with a file from another store version, before the schema's field-level complaint. */
export function versionAdvice(kind: string) {
  return (json: unknown): string | null => {
    const version = (json as { version?: unknown } | null)?.version;
    if (typeof version !== 'number' || version === STORE_VERSION) return null;
    return version > STORE_VERSION
      ? `written by a newer Obra (${kind} version ${version}; this Obra reads version ${STORE_VERSION}) — upgrade Obra to use it`
      : `written by an older Obra (${kind} version ${version}; this Obra reads version ${STORE_VERSION}) — keep using the Obra that wrote it, or start a new store with --db <folder>`;
  };
}
