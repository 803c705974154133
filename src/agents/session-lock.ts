import { EventEmitter } from 'node:events';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Keeps one Claude Code session to one call at a time. The CLI has no lock of its own: two concurrent
 * `--resume U` calls both succeed and silently branch the conversation, so Obra serialises them.
 *
 * In-process holders are tracked in a map and announce their release as an event (a waiting iteration leaves
 * its backoff wait at once). Other Obra processes on the machine see a lock file with the holder's pid; a file
 * whose pid is dead is stale and taken over.
 */
export class SessionLocks {
  private readonly held = new Set<string>();
  private readonly events = new EventEmitter();

  constructor(private readonly dir: string = join(tmpdir(), `obra-session-locks-${process.getuid?.() ?? 'user'}`)) {}

  /** Takes the lock, or says who holds it. Never waits: waiting is the machine's `retryingSessionLock`. */
  tryAcquire(sessionId: string): { ok: true; release: () => void } | { ok: false; holder: string } {
    if (this.held.has(sessionId)) return { ok: false, holder: 'another task in this process' };
    const file = join(this.dir, `${sessionId}.lock`);
    mkdirSync(this.dir, { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        writeSync(fd, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
        closeSync(fd);
        this.held.add(sessionId);
        let released = false;
        return {
          ok: true,
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
        if (pid !== null && pid !== process.pid && isAlive(pid)) return { ok: false, holder: `process ${pid}` };
        rmSync(file, { force: true }); // stale: its process is gone
      }
    }
    return { ok: false, holder: 'another process (lock file contended)' };
  }

  /** Calls `listener` when this process releases `sessionId`; returns the unsubscribe function. */
  onRelease(sessionId: string, listener: () => void): () => void {
    const handler = (released: string) => {
      if (released === sessionId) listener();
    };
    this.events.on('release', handler);
    return () => this.events.off('release', handler);
  }
}

function readHolderPid(file: string): number | null {
  try {
    const pid = (JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid;
    return typeof pid === 'number' ? pid : null;
  } catch {
    return null;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One lock registry per process: every task in the process shares it. */
export const processSessionLocks = new SessionLocks();
