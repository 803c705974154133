import { EventEmitter } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, watch, writeFileSync, writeSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive } from '../core/process.js';

/**
 * Keeps one Claude Code session to one call at a time. The CLI has no lock of its own: two concurrent
 * `--resume U` calls both succeed and silently branch the conversation, so Obra serialises them.
 *
 * In-process holders are tracked in a set and announce their release as an event (a waiting iteration leaves
 * its backoff wait at once). Other Obra processes on the machine see a lock file `<dir>/<session>.lock` with the
 * holder's pid; a file whose pid is dead is stale and taken over. Its removal is watched (inotify), so a waiter
 * in another process hears of the release as an event too.
 */
export class SessionLocks {
  private readonly held = new Set<string>();
  private readonly events = new EventEmitter();
  private watcher: FSWatcher | null = null;
  private watchers = 0;

  constructor(readonly dir: string = defaultLockDir()) {
    this.events.setMaxListeners(0);
  }

  /** Takes the lock, or says who holds it. Never waits: waiting is the machine's `retryingSessionLock`. */
  tryAcquire(sessionId: string): { ok: true; release: () => void; recordChild: (pgid: number) => void } | { ok: false; holder: string } {
    if (this.held.has(sessionId)) return { ok: false, holder: 'another task in this process' };
    const file = this.fileOf(sessionId);
    mkdirSync(this.dir, { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        const since = new Date().toISOString();
        writeSync(fd, JSON.stringify({ pid: process.pid, since }));
        closeSync(fd);
        this.held.add(sessionId);
        let released = false;
        return {
          ok: true,
          // The CLI's process group, so that if this process dies (SIGKILL) the next holder can stop the
          // orphaned call before it resumes the session: two live calls would branch the conversation.
          recordChild: (pgid: number) => {
            if (!released) writeFileSync(file, JSON.stringify({ pid: process.pid, since, child: pgid }));
          },
          release: () => {
            if (released) return;
            released = true;
            this.held.delete(sessionId);
            rmSync(file, { force: true });
            this.events.emit('release', sessionId);
          },
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const pid = readHolderPid(file);
        if (pid !== null && pid !== process.pid && isAlive(pid)) return { ok: false, holder: `Obra process ${pid}` };
        // A file being written this instant has no pid yet: treat it as held, not stale.
        if (pid === null && ageMs(file) < 1000) return { ok: false, holder: 'another Obra process' };
        killOrphanedCall(file);
        rmSync(file, { force: true }); // stale: its process is gone
      }
    }
    return { ok: false, holder: 'another Obra process (lock file contended)' };
  }

  /** Whether a call on `sessionId` would get the lock now (no live holder here or in another process). */
  isFree(sessionId: string): boolean {
    if (this.held.has(sessionId)) return false;
    const file = this.fileOf(sessionId);
    if (!existsSync(file)) return true;
    const pid = readHolderPid(file);
    return pid !== null && pid !== process.pid && !isAlive(pid);
  }

  /**
   * Calls `listener` once, when `sessionId` is released by this process or by another one (its lock file
   * disappears) — or right away if it is already free, so a release that slipped in between a refused call and
   * this subscription is not missed. Returns the unsubscribe function.
   */
  onRelease(sessionId: string, listener: () => void): () => void {
    let done = false;
    const fire = () => {
      if (done) return;
      done = true;
      unsubscribe();
      listener();
    };
    const handler = (released: string) => {
      if (released === sessionId) fire();
    };
    this.events.on('release', handler);
    this.startWatching();
    const unsubscribe = () => {
      if (!this.events.listeners('release').includes(handler)) return;
      this.events.off('release', handler);
      this.stopWatching();
    };
    if (this.isFree(sessionId)) queueMicrotask(fire);
    return () => {
      done = true;
      unsubscribe();
    };
  }

  private fileOf(sessionId: string): string {
    return join(this.dir, `${sessionId}.lock`);
  }

  /** One directory watcher while anyone waits: a removed lock file of another process is a release. */
  private startWatching(): void {
    this.watchers++;
    if (this.watcher) return;
    try {
      mkdirSync(this.dir, { recursive: true });
      this.watcher = watch(this.dir, (_event, filename) => {
        const name = filename?.toString();
        if (!name?.endsWith('.lock')) return;
        const sessionId = name.slice(0, -'.lock'.length);
        if (!this.held.has(sessionId) && !existsSync(join(this.dir, name))) this.events.emit('release', sessionId);
      });
      this.watcher.unref();
      this.watcher.on('error', () => this.closeWatcher());
    } catch {
      // No inotify (or the folder vanished): waiters fall back to their backoff timer.
      this.watcher = null;
    }
  }

  private stopWatching(): void {
    this.watchers = Math.max(0, this.watchers - 1);
    if (this.watchers === 0) this.closeWatcher();
  }

  private closeWatcher(): void {
    this.watcher?.close();
    this.watcher = null;
  }
}

function defaultLockDir(): string {
  return process.env.OBRA_SESSION_LOCK_DIR ?? join(tmpdir(), `obra-session-locks-${process.getuid?.() ?? 'user'}`);
}

function readHolderPid(file: string): number | null {
  try {
    const pid = (JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid;
    return typeof pid === 'number' ? pid : null;
  } catch {
    return null;
  }
}

/** A stale lock's call may have outlived its Obra process (it runs in its own group): stop it. */
function killOrphanedCall(file: string): void {
  try {
    const child = (JSON.parse(readFileSync(file, 'utf8')) as { child?: unknown }).child;
    if (typeof child === 'number' && child > 1) process.kill(-child, 'SIGKILL');
  } catch {
    // no child recorded, or it is gone already
  }
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return Infinity;
  }
}

/** One lock registry per process: every task in the process shares it. */
export const processSessionLocks = new SessionLocks();
