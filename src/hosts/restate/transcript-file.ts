import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { SavedTranscript, TranscriptMark } from './model.js';

/** The CLI's transcript file on this worker, against the copies Restate keeps (marks: length and SHA-256). */

export function markOf(bytes: Buffer): TranscriptMark {
  return { length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Whether `bytes` begin with the transcript `mark` was taken of. */
export function goesOnFrom(bytes: Buffer, mark: TranscriptMark): boolean {
  return bytes.length >= mark.length && markOf(bytes.subarray(0, mark.length)).sha256 === mark.sha256;
}

/** A transcript kept whole, from its bytes (gzip, base64, with its mark). */
export function savedOf(bytes: Buffer, savedBy: string): SavedTranscript {
  const gzipped = gzipSync(bytes);
  return { ...markOf(bytes), gzipBase64: gzipped.toString('base64'), bytes: gzipped.length, savedAt: Date.now(), savedBy };
}

/**
 * What the file at `path` was made to be: `restored` (there was none), `same`, `cut` (it went on past the copy:
 * the turns after it are cut off) or `rewritten` (it was another conversation).
 */
export type Restored = 'restored' | 'same' | 'cut' | 'rewritten';

/**
 * Makes the CLI's transcript at `path` the copy that matches the journal. A local file that goes on past the copy
 * holds turns the journal does not know of (a call cut by a crash or a server outage, whose answer was lost):
 * resuming on it would give the conversation a prompt twice, so it is cut back to the copy.
 */
export function restoreTranscriptFile(path: string, copy: SavedTranscript): Restored {
  const wanted = () => gunzipSync(Buffer.from(copy.gzipBase64, 'base64'));
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, wanted());
    return 'restored';
  }
  const local = readFileSync(path);
  // A copy saved without a mark (by an earlier Obra) is marked from its bytes.
  const mark = copy.sha256 ? copy : markOf(wanted());
  if (goesOnFrom(local, mark)) {
    if (local.length === mark.length) return 'same';
    truncateSync(path, mark.length);
    return 'cut';
  }
  writeFileSync(path, wanted());
  return 'rewritten';
}
