import { gunzipSync, gzipSync } from 'node:zlib';
import type { IterationRecord } from '../../core/types.js';

/** What ObraTask keeps gzipped: journal lines and iteration records, which travel that way too. */

/**
 * A batch of journal lines as ObraTask keeps it (`j<n>`): gzipped, base64 — a batch's snapshots differ in a few
 * fields, so it travels and is kept at a fraction of its size — or a plain list (as an earlier Obra kept them).
 */
export type JournalChunk = string[] | { gz: string };

export function packLines(lines: string[]): string {
  return gzipSync(lines.join('\n')).toString('base64');
}

export function linesOf(chunk: JournalChunk | null | undefined): string[] {
  if (!chunk) return [];
  if (Array.isArray(chunk)) return chunk;
  return gunzipSync(Buffer.from(chunk.gz, 'base64')).toString('utf8').split('\n');
}

/** An iteration record as a drive sends it and ObraTask keeps it (`i<n>`): gzipped, with what the run's line sums. */
export interface PackedRecord {
  index: number;
  costUsd: number;
  gz: string;
}

export function packRecord(record: IterationRecord): PackedRecord {
  return { index: record.index, costUsd: record.costUsd ?? 0, gz: gzipSync(JSON.stringify(record)).toString('base64') };
}

export function recordOf(kept: IterationRecord | PackedRecord | null | undefined): IterationRecord | null {
  if (!kept) return null;
  if ('gz' in kept && typeof kept.gz === 'string') return JSON.parse(gunzipSync(Buffer.from(kept.gz, 'base64')).toString('utf8')) as IterationRecord;
  return kept as IterationRecord;
}
