import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { SessionLocks } from '../../src/agents/session-lock.js';
import { processStart } from '../../src/core/process.js';
import { isAlive, until } from './fake-env.js';

const newLocks = () => new SessionLocks(mkdtempSync(join(tmpdir(), 'obra-locks-')));

/**
 * Another Obra process holding a session: it writes the lock file the way SessionLocks does, holds it for
 * `holdMs`, removes it, prints the time it did (taken just before, so a fast listener is never "early"), and
 * lives on `lingerMs` (so its pid stays alive meanwhile).
 */
function otherProcessHolding(dir: string, sessionId: string, holdMs: number, lingerMs = 300) {
  const file = join(dir, `${sessionId}.lock`);
  const code = `
    const fs = require('node:fs');
    fs.mkdirSync(${JSON.stringify(dir)}, { recursive: true });
    fs.writeFileSync(${JSON.stringify(file)}, JSON.stringify({ pid: process.pid, since: new Date().toISOString() }), { flag: 'wx' });
    console.log('held ' + Date.now());
    setTimeout(() => { const at = Date.now(); fs.rmSync(${JSON.stringify(file)}); console.log('released ' + at); setTimeout(() => {}, ${lingerMs}); }, ${holdMs});`;
  const child = execa('node', ['-e', code], { buffer: true, lines: true });
  return { child, file };
}

describe('SessionLocks', () => {
  it('one call per session in this process; the release is an event; other sessions are independent', () => {
    const locks = newLocks();
    const u = randomUUID();
    const first = locks.tryAcquire(u);
    expect(first.ok).toBe(true);
    expect(locks.tryAcquire(u)).toEqual({ ok: false, holder: 'another task in this process' });
    expect(locks.tryAcquire(randomUUID()).ok).toBe(true);
    expect(existsSync(join(locks.dir, `${u}.lock`))).toBe(true);
    expect(JSON.parse(readFileSync(join(locks.dir, `${u}.lock`), 'utf8')).pid).toBe(process.pid);

    const heard: string[] = [];
    locks.onRelease(u, () => heard.push('released'));
    if (first.ok) {
      first.release();
      first.release(); // twice is harmless
    }
    expect(heard).toEqual(['released']); // synchronously, exactly once
    expect(existsSync(join(locks.dir, `${u}.lock`))).toBe(false);
    expect(locks.tryAcquire(u).ok).toBe(true);
  });

  it('a listener for a session that is already free is called at once (a release that slipped in is not missed)', async () => {
    const locks = newLocks();
    let called = 0;
    locks.onRelease(randomUUID(), () => called++);
    await Promise.resolve();
    expect(called).toBe(1);
    const unsubscribed = locks.onRelease(randomUUID(), () => called++);
    unsubscribed();
    await Promise.resolve();
    expect(called).toBe(1);
  });

  it('sees a lock file of another live process, and hears its release (file removed) while that process still lives', async () => {
    const locks = newLocks();
    const u = randomUUID();
    // The holder lives on for 5 s after removing its file: the release heard is the removal, not its death.
    const other = otherProcessHolding(locks.dir, u, 600, 5000);
    await until(() => existsSync(other.file), 5000, 'the other process to take the lock');
    const refused = locks.tryAcquire(u);
    expect(refused).toEqual({ ok: false, holder: `Obra process ${other.child.pid}` });
    expect(locks.isFree(u)).toBe(false);

    let printed = '';
    other.child.stdout!.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    const heard = await new Promise<{ at: number; holderAlive: boolean }>((resolve) =>
      locks.onRelease(u, () => resolve({ at: Date.now(), holderAlive: isAlive(other.child.pid!) })),
    );
    await until(() => /released \d+/.test(printed), 5000, 'the holder to print its release time');
    other.child.kill('SIGKILL');
    await other.child.catch(() => {});
    const releasedAt = Number(printed.match(/released (\d+)/)![1]);
    expect(heard.at - releasedAt).toBeGreaterThanOrEqual(0);
    expect(heard.holderAlive).toBe(true);
    expect(locks.tryAcquire(u).ok).toBe(true);
  });

  it('takes over a stale lock file whose process is gone', async () => {
    const locks = newLocks();
    const u = randomUUID();
    const dead = await execa('node', ['-e', 'console.log(process.pid)']);
    writeFileSync(join(locks.dir, `${u}.lock`), JSON.stringify({ pid: Number(dead.stdout), since: 'earlier' }));
    expect(locks.isFree(u)).toBe(true);
    const taken = locks.tryAcquire(u);
    expect(taken.ok).toBe(true);
    expect(JSON.parse(readFileSync(join(locks.dir, `${u}.lock`), 'utf8')).pid).toBe(process.pid);
  });

  it('an empty lock file being written right now counts as held, an old empty one as stale', () => {
    const locks = newLocks();
    const fresh = randomUUID();
    writeFileSync(join(locks.dir, `${fresh}.lock`), '');
    expect(locks.tryAcquire(fresh)).toEqual({ ok: false, holder: 'another Obra process' });
    const old = randomUUID();
    writeFileSync(join(locks.dir, `${old}.lock`), '');
    const past = new Date(Date.now() - 5000);
    utimesSync(join(locks.dir, `${old}.lock`), past, past);
    expect(locks.tryAcquire(old).ok).toBe(true);
  });
});

describe('a call that outlived its Obra process', () => {
  it('is killed (its whole process group) when the stale lock is taken over, before the session is used again', async () => {
    const locks = newLocks();
    const session = randomUUID();
    // The orphan: a detached process group, like the CLI call of an Obra that was SIGKILLed.
    const orphan = execa('node', ['-e', 'setInterval(() => {}, 1000)'], { detached: true, reject: false });
    // A pid that is certainly dead: a process that already exited.
    const exited = execa('node', ['-e', '0']);
    const deadPid = exited.pid;
    await exited;
    writeFileSync(join(locks.dir, `${session}.lock`), JSON.stringify({ pid: deadPid, since: new Date().toISOString(), child: orphan.pid }));

    const lock = locks.tryAcquire(session);
    expect(lock.ok).toBe(true);
    const ended = await orphan;
    expect(ended.signal).toBe('SIGKILL');
    if (lock.ok) lock.release();
  });

  it('records the child group of a live call in the lock file', () => {
    const locks = newLocks();
    const session = randomUUID();
    const lock = locks.tryAcquire(session);
    if (!lock.ok) throw new Error('expected the lock');
    lock.recordChild(4242);
    expect(JSON.parse(readFileSync(join(locks.dir, `${session}.lock`), 'utf8'))).toMatchObject({ pid: process.pid, child: 4242 });
    lock.release();
    expect(existsSync(join(locks.dir, `${session}.lock`))).toBe(false);
  });

  it('a holder pid that now names another process (started at another time) is stale: its call is killed, waited for, and reported', async () => {
    const locks = newLocks();
    const session = randomUUID();
    const orphan = execa('node', ['-e', 'setInterval(() => {}, 1000)'], { detached: true, reject: false });
    // The pid of the lock's Obra process was reused by a live process that has nothing to do with the session.
    const stranger = execa('node', ['-e', 'setInterval(() => {}, 1000)'], { reject: false });
    await until(() => processStart(orphan.pid!) !== null && processStart(stranger.pid!) !== null, 5000, 'the processes to start');
    const since = new Date().toISOString();
    writeFileSync(join(locks.dir, `${session}.lock`), JSON.stringify({ pid: stranger.pid, start: 'an earlier boot tick', since, child: orphan.pid, childStart: processStart(orphan.pid!) }));
    try {
      expect(locks.isFree(session)).toBe(true);
      const lock = locks.tryAcquire(session);
      // Gone when the lock is handed over, not some time after: the next call may start at once.
      const goneAtOnce = !isAlive(orphan.pid!);
      expect(lock).toMatchObject({ ok: true, stopped: { pgid: orphan.pid, ownerPid: stranger.pid, since } });
      expect(goneAtOnce).toBe(true);
      expect((await orphan).signal).toBe('SIGKILL');
      expect(isAlive(stranger.pid!)).toBe(true);
      if (lock.ok) lock.release();
    } finally {
      stranger.kill('SIGKILL');
      orphan.kill('SIGKILL');
    }
  });

  it('a recorded call group whose leader pid now names another process is left alone (that call is long gone)', async () => {
    const locks = newLocks();
    const session = randomUUID();
    const exited = execa('node', ['-e', '0']);
    const deadPid = exited.pid;
    await exited;
    // A process group leader that is not the call: its start time is not the one recorded.
    const innocent = execa('node', ['-e', 'setInterval(() => {}, 1000)'], { detached: true, reject: false });
    await until(() => processStart(innocent.pid!) !== null, 5000, 'the process to start');
    writeFileSync(join(locks.dir, `${session}.lock`), JSON.stringify({ pid: deadPid, start: null, since: 'earlier', child: innocent.pid, childStart: 'an earlier boot tick' }));
    try {
      const lock = locks.tryAcquire(session);
      expect(lock.ok).toBe(true);
      expect(lock.ok && lock.stopped).toBeUndefined();
      expect(isAlive(innocent.pid!)).toBe(true);
      if (lock.ok) lock.release();
    } finally {
      innocent.kill('SIGKILL');
    }
  });

  it('records the holder\'s start time and the call group\'s leader start time', () => {
    const locks = newLocks();
    const lock = locks.tryAcquire(randomUUID());
    if (!lock.ok) throw new Error('expected the lock');
    lock.recordChild(process.pid);
    const file = readdirSync(locks.dir).find((f) => f.endsWith('.lock'))!;
    expect(JSON.parse(readFileSync(join(locks.dir, file), 'utf8'))).toMatchObject({ pid: process.pid, start: processStart(process.pid), child: process.pid, childStart: processStart(process.pid) });
    lock.release();
  });
});
