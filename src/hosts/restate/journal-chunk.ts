import { deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import type { IterationRecord } from '../../core/types.js';
import { usageOfRecords, type UsageTotals } from '../../core/usage-totals.js';

/**
 * What ObraTask keeps packed: journal lines and iteration records, which travel that way too.
 *
 * An iteration's journal lines and its record look much like the previous iteration's (the same states, the same
 * fields; a few values differ): each is deflated with the one before it as the dictionary (`z`), which packs
 * an iteration's ~14 KB of lines into a few hundred bytes, where gzip alone gives ~2.4 KB. The zlib format keeps
 * the dictionary's Adler-32: a chunk unpacked against the wrong one fails loudly, never as wrong lines.
 */

/** What deflate can use of a dictionary (its window): the last 32 KB. */
const WINDOW = 32 * 1024;
const dictionary = (text: string) => {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length > WINDOW ? bytes.subarray(bytes.length - WINDOW) : bytes;
};

/**
 * A batch of journal lines as ObraTask keeps it (`j<n>`): deflated with the text of the chunk before it as the
 * dictionary (`z`); or alone, gzipped (`gz`: a drive's first batch, and any that holds a checkpoint, which is
 * where a claim starts reading); or a plain list (as an earlier Obra kept them). All base64.
 */
export type JournalChunk = string[] | { gz: string } | { z: string };

/** Packs a batch: against `previous` (the text of the chunk kept just before it) when given, else alone. */
export function packLines(lines: string[], previous: string | null): { gz: string } | { z: string } {
  const text = lines.join('\n');
  if (previous === null) return { gz: gzipSync(text).toString('base64') };
  return { z: deflateSync(text, { dictionary: dictionary(previous) }).toString('base64') };
}

/** The text a chunk's lines make: the dictionary of the chunk after it. */
export const chunkText = (lines: string[]) => lines.join('\n');

/** A chunk's lines; `previous` is the text of the chunk before it (needed by a `z` chunk). */
export function linesOf(chunk: JournalChunk | null | undefined, previous: string | null): string[] {
  if (!chunk) return [];
  if (Array.isArray(chunk)) return chunk;
  if ('gz' in chunk) return gunzipSync(Buffer.from(chunk.gz, 'base64')).toString('utf8').split('\n');
  if (previous === null) throw new Error('a journal chunk packed against the one before it was read without that one');
  return inflateSync(Buffer.from(chunk.z, 'base64'), { dictionary: dictionary(previous) }).toString('utf8').split('\n');
}

/**
 * An iteration record as a drive sends it and ObraTask keeps it (`i<n>`), with what the run's line sums: deflated
 * against the record before it (`z`), or alone, gzipped (`gz`: the first one).
 */
export interface PackedRecord {
  index: number;
  costUsd: number;
  /** The iteration's tokens and cost, beside the packed record: the run sums them without unpacking it. */
  usage?: UsageTotals;
  gz?: string;
  z?: string;
}

/** The text a record is packed against: the record before it, as JSON (the same from the object sent or the one read back). */
const recordText = (record: IterationRecord) => JSON.stringify(record);

export function packRecord(record: IterationRecord, previous: IterationRecord | null): PackedRecord {
  const text = JSON.stringify(record);
  const head = { index: record.index, costUsd: record.costUsd ?? 0, usage: usageOfRecords([{ agent: record.agent, costUsd: record.costUsd ?? 0 }]) };
  if (!previous) return { ...head, gz: gzipSync(text).toString('base64') };
  return { ...head, z: deflateSync(text, { dictionary: dictionary(recordText(previous)) }).toString('base64') };
}

/** A kept record (`previous`: the record before it, needed by a `z` one); a record kept as is by an earlier Obra. */
export function recordOf(kept: IterationRecord | PackedRecord | null | undefined, previous: IterationRecord | null): IterationRecord | null {
  if (!kept) return null;
  if ('gz' in kept && typeof kept.gz === 'string') return JSON.parse(gunzipSync(Buffer.from(kept.gz, 'base64')).toString('utf8')) as IterationRecord;
  if ('z' in kept && typeof kept.z === 'string') {
    if (!previous) throw new Error(`iteration record ${kept.index} is packed against the one before it, which is missing`);
    return JSON.parse(inflateSync(Buffer.from(kept.z, 'base64'), { dictionary: dictionary(recordText(previous)) }).toString('utf8')) as IterationRecord;
  }
  return kept as IterationRecord;
}
