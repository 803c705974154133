import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { overlapRecordSchema, type OverlapRecord } from '../persisted/overlap.js';
import { writeFileDurablyAsync } from './durable-file.js';

/** `runs/<id>/overlap.json`: a worktree task's overlap with its base and the other unmerged branches (src/persisted/overlap.ts). */

export const overlapPathOf = (runDir: string) => join(runDir, 'overlap.json');

/** The run's last overlap record, or null when there is none (or it cannot be read: it is worked out again at the next iteration). */
export function readOverlap(runDir: string): OverlapRecord | null {
  let text: string;
  try {
    text = readFileSync(overlapPathOf(runDir), 'utf8');
  } catch {
    return null;
  }
  try {
    const parsed = overlapRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Replaces the record atomically (a reader never sees half of it). */
export function writeOverlap(runDir: string, record: OverlapRecord): Promise<void> {
  return writeFileDurablyAsync(overlapPathOf(runDir), JSON.stringify(record));
}
