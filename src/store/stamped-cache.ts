import { statSync } from 'node:fs';

/**
 * What says a store file changed: its inode, size and times (the store replaces its small files whole, so a
 * rewrite gives a new inode), and when it last changed. A missing file (`optional`) stamps as `-`; any other
 * that cannot be looked at throws.
 */
export function fileStamp(paths: { path: string; optional?: boolean }[]): { stamp: string; changedAt: number } {
  let stamp = '';
  let changedAt = 0;
  for (const { path, optional } of paths) {
    const stats = statSync(path, { throwIfNoEntry: !optional });
    stamp += stats ? `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}|` : '-|';
    if (stats) changedAt = Math.max(changedAt, stats.mtimeMs, stats.ctimeMs);
  }
  return { stamp, changedAt };
}

/** A file changed this recently may change again within the same timestamp tick: it is read again, not kept. */
const SETTLED_MS = 1000;

/**
 * What a process read from store files it looks at again and again (a worker's look at the queue, a live
 * status), kept while the files' stamps stay the same. A value read from files changed within the last second
 * is not kept (a second change in the same timestamp tick could pass unseen), nor one its reader says may
 * change without its files changing (`keep`).
 */
export class StampedCache<V> {
  private readonly known = new Map<string, { stamp: string; value: V }>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * The value of `key`, read again (`read`) only when one of its files changed. When a file cannot be looked at
   * (gone, say), `read` is asked all the same, and says why in its own words.
   */
  get(key: string, paths: { path: string; optional?: boolean }[], read: () => V, keep: (value: V) => boolean): V {
    let stamp: string;
    let changedAt: number;
    try {
      ({ stamp, changedAt } = fileStamp(paths));
    } catch {
      this.known.delete(key);
      return read();
    }
    const hit = this.known.get(key);
    if (hit?.stamp === stamp) return hit.value;
    const value = read();
    if (keep(value) && this.now() - changedAt >= SETTLED_MS) this.known.set(key, { stamp, value });
    else this.known.delete(key);
    return value;
  }

  delete(key: string): void {
    this.known.delete(key);
  }

  /** Lets go of the keys not listed (runs deleted from the store). */
  keepOnly(listed: string[]): void {
    if (this.known.size <= listed.length) return;
    const still = new Set(listed);
    for (const key of this.known.keys()) if (!still.has(key)) this.known.delete(key);
  }

  get size(): number {
    return this.known.size;
  }
}
