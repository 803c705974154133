import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { UsageLimit } from '../core/types.js';
import { defaultStoreFs, writeFileDurably, type StoreFs } from '../store/durable-file.js';
import { fileStamp } from '../store/stamped-cache.js';

/**
 * The account's limits, shared by every task that uses one store (every `obra run` and `obra work` on it):
 * - the usage limit: once one call sees it, no task starts another call before the reset;
 * - the API's rate limit: once one call is refused (429/529, after the CLI's own retries), the other tasks wait
 *   out the same backoff instead of each hitting the API again.
 * Kept in `<store>/limits.json`, replaced atomically; a missing or unreadable file means "no limit known" (the
 * next call finds out for itself).
 */

const limitFileSchema = z.object({
  usageLimit: z
    .object({
      limitType: z.string().nullable(),
      resetsAt: z.number(),
      message: z.string(),
      seenAt: z.number(),
      runId: z.string(),
    })
    .nullable(),
  /** The API's rate limit (429/529 after the CLI's own retries): every task waits until `until`. */
  rateLimit: z
    .object({ until: z.number(), status: z.number(), message: z.string(), strikes: z.number().int(), seenAt: z.number(), runId: z.string() })
    .nullable()
    .optional(),
});
type LimitFile = z.infer<typeof limitFileSchema>;

/** The account's rate-limit wait: until when, and why. */
export interface SharedRateLimit {
  until: number;
  status: number;
  message: string;
  runId: string;
}

/** Strikes older than this start the count again (the API has been fine meanwhile). */
const STRIKES_FORGOTTEN_MS = 10 * 60_000;

export interface KnownUsageLimit extends UsageLimit {
  resetsAt: number;
  /** When a call saw it, and in which run. */
  seenAt: number;
  runId: string;
}

export class AccountLimits {
  constructor(
    /** `<store>/limits.json`; null keeps the limit in this object only (tests, library runs without a store). */
    private readonly file: string | null,
    /** The store's file-system seam (tests watch the atomic write's syncs through it). */
    private readonly fs: StoreFs = defaultStoreFs,
  ) {}

  private inMemory: LimitFile = { usageLimit: null, rateLimit: null };
  /** The file as last read, and the stat it had then: every agent call looks, and it rarely changes. */
  private cached: { stamp: string; file: LimitFile } | null = null;

  /** The usage limit in force at `now` (its reset still ahead), or null. */
  current(now: number): KnownUsageLimit | null {
    return this.inForce(now).usageLimit;
  }

  /** Both limits in force at `now` (one read of the file). */
  inForce(now: number, file: LimitFile = this.load()): { usageLimit: KnownUsageLimit | null; rateLimit: SharedRateLimit | null } {
    const usage = file.usageLimit;
    return {
      usageLimit: usage && usage.resetsAt > now ? { ...usage, blockedBy: null } : null,
      rateLimit: file.rateLimit && file.rateLimit.until > now ? file.rateLimit : null,
    };
  }

  /**
   * A call was rate limited: every task of the account waits before its next call — the rate-limit backoff
   * (`delay(strikes)`), longer with each refusal that follows soon after another. Returns the end of the wait.
   */
  noteRateLimited(status: number, message: string, runId: string, now: number, delay: (strikes: number) => number): number {
    const file = this.load();
    const before = file.rateLimit;
    const strikes = before && now - before.seenAt < STRIKES_FORGOTTEN_MS ? before.strikes + 1 : 1;
    const until = Math.max(before?.until ?? 0, now + delay(strikes));
    this.save({ ...file, rateLimit: { until, status, message, strikes, seenAt: now, runId } });
    return until;
  }

  /**
   * A call got through. When it was sent after the last refusal, the API takes calls again: the wait and its
   * strikes are forgotten. (A call sent before the refusal says nothing about the API since.)
   */
  noteAnswered(sentAt: number): void {
    const file = this.load();
    if (file.rateLimit && file.rateLimit.seenAt <= sentAt) this.save({ ...file, rateLimit: null });
  }

  /** Remembers a limit a call ran into, when it has a reset to wait for and it ends later than the one known. */
  note(limit: UsageLimit, runId: string, now: number): void {
    if (limit.resetsAt === null || limit.blockedBy) return;
    const file = this.load();
    const known = this.inForce(now, file).usageLimit;
    if (known && known.resetsAt >= limit.resetsAt) return;
    this.save({ ...file, usageLimit: { limitType: limit.limitType, resetsAt: limit.resetsAt, message: limit.message, seenAt: now, runId } });
  }

  private load(): LimitFile {
    if (!this.file) return this.inMemory;
    let stamp: string;
    try {
      // A missing file is the usual case: asked without an exception, and kept as "no limit" like any other. The
      // file is replaced by rename, so a new version has a new inode (and most often another time or size).
      stamp = fileStamp([{ path: this.file, optional: true }]).stamp;
    } catch {
      return { usageLimit: null, rateLimit: null };
    }
    if (this.cached?.stamp === stamp) return this.cached.file;
    let file: LimitFile = { usageLimit: null, rateLimit: null };
    try {
      const parsed = limitFileSchema.safeParse(JSON.parse(readFileSync(this.file, 'utf8')));
      if (parsed.success) file = parsed.data;
    } catch {
      // Missing (gone since the stat) or unreadable: no limit known, until the file changes.
    }
    this.cached = { stamp, file };
    return file;
  }

  private save(file: LimitFile): void {
    this.inMemory = file;
    if (!this.file) return;
    try {
      writeFileDurably(this.file, JSON.stringify(file), this.fs);
    } catch {
      // Sharing a limit is an optimisation: each task still finds it out on its own next call.
    }
  }
}
