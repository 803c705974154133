import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { UsageLimit } from '../core/types.js';
import { writeFileDurably } from '../store/durable-file.js';

/**
 * The account's usage limit, shared by every task that uses one store (every `obra run` and `obra work` on it):
 * once one call sees the limit, no task starts another call before the reset — the API would only refuse it
 * again. Kept in `<store>/limits.json`, replaced atomically; a missing or unreadable file means "no limit known"
 * (the next call finds out for itself).
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
});

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
  ) {}

  private inMemory: KnownUsageLimit | null = null;

  /** The usage limit in force at `now` (its reset still ahead), or null. */
  current(now: number): KnownUsageLimit | null {
    const known = this.file ? this.read() : this.inMemory;
    return known && known.resetsAt > now ? known : null;
  }

  /** Remembers a limit a call ran into, when it has a reset to wait for and it ends later than the one known. */
  note(limit: UsageLimit, runId: string, now: number): void {
    if (limit.resetsAt === null || limit.blockedBy) return;
    const known = this.current(now);
    if (known && known.resetsAt >= limit.resetsAt) return;
    const entry: KnownUsageLimit = { limitType: limit.limitType, resetsAt: limit.resetsAt, blockedBy: null, message: limit.message, seenAt: now, runId };
    this.inMemory = entry;
    if (!this.file) return;
    try {
      const { blockedBy: _, ...stored } = entry;
      writeFileDurably(this.file, JSON.stringify({ usageLimit: stored }));
    } catch {
      // Sharing the limit is an optimisation: each task still finds it out on its own next call.
    }
  }

  private read(): KnownUsageLimit | null {
    let text: string;
    try {
      text = readFileSync(this.file!, 'utf8');
    } catch {
      return null;
    }
    try {
      const parsed = limitFileSchema.safeParse(JSON.parse(text));
      const limit = parsed.success ? parsed.data.usageLimit : null;
      return limit ? { ...limit, blockedBy: null } : null;
    } catch {
      return null;
    }
  }
}
