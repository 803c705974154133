import { EventEmitter } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync, writeSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { holderIsAlive, isAlive, processStart } from '../core/process.js';

/** What a lock file holds: its Obra process, and once the call started, the call's process group. */
interface LockFile {
  pid: number;
  /** The holder's start time (`processStart`): a pid reused by another process is not the holder. */
  start: string | null;
  since: string;
  child?: number;
  childStart?: string | null;
}

/** A call of the session that outlived its Obra process, stopped before the session was used again. */
export interface EarlierCall {
  pgid: number;
  /** The Obra process that started it (gone). */
  ownerPid: number;
  /** When that process took the session. */
  since: string;
}

export type SessionLockResult =
  | { ok: true; release: () => void; recordChild: (pgid: number) => void; stopped?: EarlierCall }
  | { ok: false; holder: string };

/**
 * Keeps one Claude Code session to one call at a time. The CLI has no lock of its own: two concurrent
 * `--resume U` calls both succeed and silently branch the conversation, so Obra serialises them.
 *
 * In-process holders are tracked in a set and announce their release as an event (a waiting iteration leaves
 * its backoff wait at once). Other Obra processes on the machine see a lock file `<dir>/<session>.lock` with the
 * holder's pid and start time; a file whose process is gone (or whose pid now names another process) is stale and
 * taken over. Its removal is watched (inotify), so a waiter in another process hears of the release as an event too.
 *
 * The file also names the running call's process group (and its leader's start time): a call whose Obra process
 * died may still run (its reaper was killed too, or the kill came before the group was registered). Taking over a
 * stale lock kills that group and waits until it is gone, so no call of a session starts while an older one of
 * the same session is alive on this machine; the taker is told, to journal and log it.
 */
export class SessionLocks {
  private readonly held = new Set<string>();
  /** Groups of stale locks' calls that did not die when killed: their sessions are not free while they live. */
  private readonly undying = new Set<number>();
  private readonly events = new EventEmitter();
  private watcher: FSWatcher | null = null;
  private watchers = 0;

  constructor(readonly dir: string = defaultLockDir()) {
    this.events.setMaxListeners(0);
  }

  /** Takes the lock, or says who holds it. Never waits: waiting is the machine's `retryingSessionLock`. */
  tryAcquire(sessionId: string): SessionLockResult {
    if (this.held.has(sessionId)) return { ok: false, holder: 'another task in this process' };
    const file = this.fileOf(sessionId);
    mkdirSync(this.dir, { recursive: true });
    let stopped: EarlierCall | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx');
        const holder: LockFile = { pid: process.pid, start: processStart(process.pid), since: new Date().toISOString() };
        writeSync(fd, JSON.stringify(holder));
        closeSync(fd);
        this.held.add(sessionId);
        let released = false;
        return {
          ok: true,
          ...(stopped ? { stopped } : {}),
          // The CLI's process group, so that if this process dies (SIGKILL) the next holder can stop the
          // orphaned call before it resumes the session: two live calls would branch the conversation.
          recordChild: (pgid: number) => {
            if (!released) writeFileSync(file, JSON.stringify({ ...holder, child: pgid, childStart: processStart(pgid) } satisfies LockFile));
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
        const lock = readLockFile(file);
        if (lock && lock.pid !== process.pid && holderIsAlive(lock)) return { ok: false, holder: `Obra process ${lock.pid}` };
        // A file being written this instant has no pid yet: treat it as held, not stale.
        if (!lock && ageMs(file) < 1000) return { ok: false, holder: 'another Obra process' };
        // Stale: its process is gone. Its call may not be: stopped (and waited for) before the file goes.
        const earlier = lock ? stopEarlierCall(lock) : undefined;
        if (earlier?.alive) {
          this.undying.add(earlier.pgid);
          return { ok: false, holder: `a call of the dead Obra process ${earlier.ownerPid} that does not die (process group ${earlier.pgid})` };
        }
        if (earlier) stopped = { pgid: earlier.pgid, ownerPid: earlier.ownerPid, since: earlier.since };
        rmSync(file, { force: true });
      }
    }
    return { ok: false, holder: 'another Obra process (lock file contended)' };
  }

  /** Whether a call on `sessionId` would get the lock now (no live holder here or in another process). */
  isFree(sessionId: string): boolean {
    if (this.held.has(sessionId)) return false;
    const file = this.fileOf(sessionId);
    if (!existsSync(file)) return true;
    const lock = readLockFile(file);
    if (lock === null || lock.pid === process.pid || holderIsAlive(lock)) return false;
    // Not a release to wake a waiter for (it would try again at once, and wait for it again): its backoff will.
    return !(lock.child !== undefined && this.undying.has(lock.child) && groupMembers(lock.child).length > 0);
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

function readLockFile(file: string): LockFile | null {
  try {
    const lock = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockFile>;
    if (typeof lock.pid !== 'number') return null;
    // A file written by an Obra before start times were kept has none: its pid alone decides.
    return { ...lock, pid: lock.pid, start: typeof lock.start === 'string' ? lock.start : null, since: String(lock.since ?? '') };
  } catch {
    return null;
  }
}

/** How long a SIGKILLed call may take to be gone (it cannot refuse; this covers a loaded machine). */
const GONE_WITHIN_MS = 2000;

/**
 * Kills the process group of a stale lock's call if it still has a live process, and waits until none is left
 * (`alive` when some still is after GONE_WITHIN_MS).
 * A leader pid that now names another process (started at another time) means the call's group is long empty
 * (Linux does not reuse the id of a group that still has members): nothing of the call is left to stop.
 */
function stopEarlierCall(lock: LockFile): (EarlierCall & { alive: boolean }) | undefined {
  const pgid = lock.child;
  if (typeof pgid !== 'number' || pgid <= 1) return undefined;
  if (isAlive(pgid) && lock.childStart && processStart(pgid) !== lock.childStart) return undefined;
  if (!groupMembers(pgid).length) return undefined;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    return undefined; // gone meanwhile
  }
  const deadline = Date.now() + GONE_WITHIN_MS;
  // A short synchronous wait (a SIGKILLed process is gone in milliseconds), met only after a crash.
  let alive = true;
  while ((alive = groupMembers(pgid).length > 0) && Date.now() < deadline) Atomics.wait(SLEEPER, 0, 0, 5);
  // Still there (stuck in the kernel): the session stays locked, and the next try kills it again.
  return { pgid, ownerPid: lock.pid, since: lock.since, alive };
}

const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

/** The live (not zombie) processes of a process group, from /proc (field 5 of stat is the group). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return isAlive(pgid) ? [pgid] : []; // no /proc: the leader stands for its group
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] !== 'Z' && Number(fields[2]) === pgid) members.push(Number(name));
    } catch {
      // it ended while we looked
    }
  }
  return members;
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
