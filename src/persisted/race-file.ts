import { z } from 'zod';

/**
 * A race's decision (`<store>/races/<raceId>.json`), written once when its last attempt ended: the attempts
 * ranked with their evidence, the winner (null when none ended done) and why. Created exclusively: the first
 * process to decide writes it, any other reads that one (the decision is derived from the attempts' records,
 * so two would agree anyway).
 */
export const RACE_FILE_VERSION = 1;

export const attemptEvidenceSchema = z.object({
  runId: z.string(),
  attempt: z.number().int(),
  agent: z.string(),
  status: z.string(),
  checksPassed: z.number().int(),
  checksTotal: z.number().int(),
  judge: z.number().nullable(),
  quality: z.number().nullable(),
  confidence: z.number().nullable(),
  costUsd: z.number(),
  costEstimated: z.boolean(),
  durationMs: z.number(),
});

export const raceFileSchema = z.object({
  version: z.literal(RACE_FILE_VERSION),
  raceId: z.string().regex(/^[A-Za-z0-9_-]+$/),
  decidedAt: z.string(),
  /** Best first. */
  ranked: z.array(attemptEvidenceSchema),
  winner: z.string().nullable(),
  reasons: z.array(z.string()),
});
export type RaceFile = z.infer<typeof raceFileSchema>;

export function raceFileAdvice(json: unknown): string | null {
  const version = (json as { version?: unknown } | null)?.version;
  return typeof version === 'number' && version !== RACE_FILE_VERSION ? `a race decision of version ${version} (this Obra reads version ${RACE_FILE_VERSION}) — use the Obra that wrote it` : null;
}
