import type * as restate from '@restatedev/restate-sdk';
import type { KeptTranscript, RunTranscript, StoredRun, TranscriptRef, TranscriptWrite } from './model.js';

/**
 * A run's transcript as its ObraTask object keeps it: a mark (length, SHA-256, parts; in the run's record,
 * `transcriptKept`, which every write of a drive reads and writes anyway) and its parts (`t<n>`), each a gzip
 * member. A write that goes on from the mark kept appends one part, so what a drive sends per iteration is the
 * iteration's own lines, however long the conversation; a whole write replaces the parts. The gzip members
 * concatenated are one valid gzip stream: the whole transcript is read without unpacking.
 */

type Ctx = restate.ObjectContext;
type Reader = restate.ObjectSharedContext;

/** The mark kept: in the run's record; or, for a run an earlier Obra kept, under a key of its own (`transcript`). */
async function keptMark(ctx: Reader, run: StoredRun): Promise<(KeptTranscript & { gzipBase64?: string }) | null> {
  if (run.transcriptKept !== undefined) return run.transcriptKept;
  return (await ctx.get<KeptTranscript & { gzipBase64?: string }>('transcript')) ?? null;
}

/** The mark goes in the run's record (saved with it by the handler); a key an earlier Obra kept it under goes. */
function setMark(ctx: Ctx, run: StoredRun, mark: KeptTranscript): void {
  if (run.transcriptKept === undefined) ctx.clear('transcript');
  run.transcriptKept = mark;
}

/**
 * Keeps the transcript a drive sent with a write. Returns false when it was a delta that does not go on from the
 * copy kept (which is left as it was: the drive sends the whole next time).
 */
export async function keepTranscript(ctx: Ctx, run: StoredRun, write: TranscriptWrite | null | undefined): Promise<boolean> {
  if (!write) return true;
  const kept = await keptMark(ctx, run);
  const bytes = Buffer.byteLength(write.gzipBase64, 'base64');
  const mark = { sessionId: write.sessionId, length: write.mark.length, sha256: write.mark.sha256, savedAt: write.savedAt, savedBy: write.savedBy };
  if (write.base) {
    const goesOn = kept?.parts !== undefined && kept.sessionId === write.sessionId && kept.length === write.base.length && kept.sha256 === write.base.sha256;
    if (!goesOn) return false;
    ctx.set(`t${kept.parts}`, write.gzipBase64);
    setMark(ctx, run, { ...mark, parts: kept.parts + 1, bytes: kept.bytes + bytes });
    return true;
  }
  // A late whole copy never replaces a later one of the same session.
  if (kept?.sessionId === write.sessionId && kept.savedAt > write.savedAt) return true;
  for (let n = 1; n < (kept?.parts ?? 0); n++) ctx.clear(`t${n}`);
  ctx.set('t0', write.gzipBase64);
  setMark(ctx, run, { ...mark, parts: 1, bytes });
  return true;
}

/** The whole transcript kept (null when there is none). */
export async function readTranscript(ctx: Reader, run: StoredRun): Promise<RunTranscript | null> {
  const kept = await keptMark(ctx, run);
  if (!kept) return null;
  // A copy kept whole in one value (as Obra kept them before parts).
  if (kept.gzipBase64 !== undefined) return kept as unknown as RunTranscript;
  const parts: Buffer[] = [];
  for (let n = 0; n < kept.parts; n++) parts.push(Buffer.from((await ctx.get<string>(`t${n}`)) ?? '', 'base64'));
  const { parts: _parts, ...rest } = kept;
  return { ...rest, gzipBase64: Buffer.concat(parts).toString('base64') };
}

/** Where the run's transcript of `sessionId` is kept, for the session it lets go (null when it keeps none of it). */
export async function transcriptRef(ctx: Reader, run: StoredRun, sessionId: string): Promise<TranscriptRef | null> {
  const kept = await keptMark(ctx, run);
  if (!kept || kept.sessionId !== sessionId || kept.sha256 === undefined) return null;
  return { runId: ctx.key, sessionId, length: kept.length, sha256: kept.sha256, savedAt: kept.savedAt, savedBy: kept.savedBy };
}
