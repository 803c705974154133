import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, watch, writeSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { holderIsAlive, processStart } from '../core/process.js';

/**
 * A cap on agent calls in flight across every task of a store — every `obra work` and `obra run` on it, in any
 * process (`agent.max_concurrent_calls`). A call takes one of `max` slot files in `<store>/calls/` (created
 * exclusively, holding the pid and its start time) before it starts the agent, and removes it after; a slot left
 * by a process that died is taken over. A call that finds every slot taken waits for one: a release wakes the
 * waiters (a watch on the folder), with a poll as the safety net.
 */
export class CallSlots {
  private readonly waiting = new Set<() => void>();
  private watcher: FSWatcher | null = null;

  constructor(
    private readonly dir: string,
    readonly max: number,
  ) {}

  /** A free slot's release, taken now, or null when every slot is taken. */
  tryAcquire(): (() => void) | null {
    mkdirSync(this.dir, { recursive: true });
    return this.tryTake();
  }

  /** Resolves with the release of a slot once one is free (rejects when the signal aborts). */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    mkdirSync(this.dir, { recursive: true });
    for (;;) {
      if (signal?.aborted) throw new Error('aborted while waiting for an agent slot');
      const slot = this.tryTake();
      if (slot) return slot;
      await this.nextRelease(signal);
    }
  }

  /** How many slots are taken now (by live processes). */
  taken(): number {
    let n = 0;
    for (let i = 0; i < this.max; i++) if (this.holder(join(this.dir, `slot-${i}.lock`))) n++;
    return n;
  }

  private tryTake(): (() => void) | null {
    for (let i = 0; i < this.max; i++) {
      const path = join(this.dir, `slot-${i}.lock`);
      if (this.create(path)) return () => this.release(path);
      if (!this.holder(path)) {
        // Left by a process that is gone: take it over (one of the racers wins the exclusive create).
        rmSync(path, { force: true });
        if (this.create(path)) return () => this.release(path);
      }
    }
    return null;
  }

  private create(path: string): boolean {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, JSON.stringify({ pid: process.pid, start: processStart(process.pid) }));
      } finally {
        closeSync(fd);
      }
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  }

  /** The live holder of a slot file, or null (no file, half-written, or its process is gone). */
  private holder(path: string): { pid: number } | null {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT' ? null : { pid: -1 };
    }
    try {
      const json = JSON.parse(text) as { pid?: number; start?: string | null };
      if (typeof json.pid === 'number') return holderIsAlive({ pid: json.pid, start: json.start ?? null }) ? { pid: json.pid } : null;
    } catch {
      // Not JSON yet: being written right now — or left half-written by a process killed in between.
    }
    return this.isOld(path) ? null : { pid: -1 };
  }

  /** A slot file nobody finished writing within seconds was left by a process that died while writing it. */
  private isOld(path: string): boolean {
    try {
      return Date.now() - statSync(path).mtimeMs > 5_000;
    } catch {
      return true;
    }
  }

  private release(path: string): void {
    rmSync(path, { force: true });
    for (const wake of [...this.waiting]) wake();
  }

  private nextRelease(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(poll);
        this.waiting.delete(done);
        signal?.removeEventListener('abort', done);
        if (!this.waiting.size) this.unwatch();
        resolve();
      };
      // Another process's release is heard through the folder; a poll covers what a watch may miss.
      const poll = setTimeout(done, 250);
      this.waiting.add(done);
      signal?.addEventListener('abort', done, { once: true });
      this.watchFolder();
    });
  }

  private watchFolder(): void {
    if (this.watcher) return;
    try {
      this.watcher = watch(this.dir, () => {
        for (const wake of [...this.waiting]) wake();
      });
      this.watcher.unref();
    } catch {
      this.watcher = null;
    }
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = null;
  }
}
