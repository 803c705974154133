import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { replayRun, RunStore } from '../../src/index.js';
import { taskLines } from '../../src/queue/board.js';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { gitOut, gitRepo } from './helpers.js';

/**
 * SIGKILL of `obra work` with eight tasks in flight, then `obra work` again: every task goes on in its own
 * session and worktree, none is lost, none is driven twice beyond the one re-issued agent call, and each
 * task's journal replays and verifies.
 */

const TASKS = 8;
/** Turn 1 is quick; turn 2 hangs under the first worker (it is killed in flight), and is quick for the next. */
const replies = (secondTurnMs: number) =>
  JSON.stringify([
    { result: 'Wrote the first part.\nSTATUS: CONTINUE', files: { 'part-1.txt': 'first\n' }, latency_ms: 100 },
    { result: 'Wrote the second part.\nSTATUS: DONE', files: { 'part-2.txt': 'second\n' }, latency_ms: secondTurnMs },
  ]);

/** The processes whose working folder is under `dir` (the agent calls of the tasks there). */
function processesIn(dir: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readlinkSync(`/proc/${pid}/cwd`).startsWith(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('a worker killed with tasks in flight', () => {
  it('loses nothing: the next worker finishes every task in the same session and worktree, once', async () => {
    const box = sandbox();
    const log = join(box.dir, 'fake.log');
    const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: replies(120_000), FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LOG: log };
    const repo = await gitRepo(join(box.dir, 'repo'));
    const storeDir = join(box.dir, 'store');
    const ids: string[] = [];
    for (let i = 0; i < TASKS; i++) {
      const r = await obra(['submit', '--task', `Task ${i}: write the two parts`, '--repo', repo, '--db', storeDir], { cwd: box.dir, env });
      expect(r.exitCode, r.stderr).toBe(0);
      ids.push(r.stdout.trim());
    }

    const worker = execa('node', [CLI, 'work', '--db', storeDir, '--concurrency', String(TASKS)], { cwd: box.dir, env, reject: false });
    // Every task has committed iteration 1 and waits for its second agent call.
    await until('every task in its second call', () => {
      const lines = taskLines(storeDir);
      return lines.length === TASKS && lines.every((l) => l.status === 'running' && l.state === 'running / awaitingAgent' && l.iteration === 2) ? lines : undefined;
    });
    // ... and each of those calls has started its agent process.
    await until("every task's agent process", () => (processesIn(join(storeDir, 'worktrees')).length >= TASKS ? true : undefined));

    // While it runs, a task's worktree is not the user's to merge or discard.
    const merge = await obra(['merge', ids[0]!, '--db', storeDir], { cwd: box.dir, env });
    expect(merge.stderr).toBe(`obra: run ${ids[0]} is running: merge it once it has ended (or pause it first); nothing was changed`);
    const discard = await obra(['discard', ids[0]!, '--db', storeDir], { cwd: box.dir, env });
    expect(discard.stderr).toBe(`obra: run ${ids[0]} is running: stop it first (\`obra cancel ${ids[0]}\`); nothing was removed`);

    worker.kill('SIGKILL');
    expect((await worker).signal).toBe('SIGKILL');
    // The worker is gone, and its eight agent calls with it (its reaper killed them).
    await until('the agent calls to die with the worker', () => (processesIn(join(storeDir, 'worktrees')).length === 0 ? true : undefined), 2000);
    expect(taskLines(storeDir).map((l) => l.status)).toEqual(Array(TASKS).fill('interrupted'));
    for (const id of ids) expect(await gitOut(repo, 'rev-list', '--count', `main..obra/${id}`)).toBe('1');

    const again = await obra(['work', '--db', storeDir, '--until-idle', '--concurrency', String(TASKS)], { cwd: box.dir, env: { ...env, FAKE_CLAUDE_REPLIES: replies(300) } });
    expect(again.exitCode, again.stderr).toBe(0);
    for (const id of ids) expect(again.stderr).toContain(`resumed ${id}`);

    const calls = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { pid: number; cwd: string; argv: string[] });
    const store = RunStore.open(storeDir, { create: false });
    for (const id of ids) {
      const handle = store.openRun(id);
      const sessionId = handle.file.sessionId;
      expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
      const records = handle.readIterations();
      handle.close();
      expect(store.peekRun(id).status).toBe('done');
      expect(records.map((r) => [r.index, r.decision])).toEqual([
        [1, 'proceed'],
        [2, 'done'],
      ]);
      // One session, one worktree: the killed call, then its re-issue, resumed the same conversation.
      const mine = calls.filter((c) => c.argv.includes(sessionId!));
      expect(new Set(mine.map((c) => c.cwd))).toEqual(new Set([join(storeDir, 'worktrees', id)]));
      // Logged when they end: turn 1, and the re-issued turn 2 (the killed one never ended).
      expect(new Set(mine.map((c) => c.pid)).size).toBeLessThanOrEqual(3);
      expect(mine.filter((c) => c.argv.includes('--resume')).length).toBeGreaterThanOrEqual(1);
      // Two iterations, two commits, nothing left uncommitted in the worktree.
      expect(await gitOut(repo, 'log', '--format=%s', `main..obra/${id}`)).toBe(
        [`obra ${id} iteration 2: done — Wrote the second part.`, `obra ${id} iteration 1: proceed — Wrote the first part.`].join('\n'),
      );
      expect(await gitOut(join(storeDir, 'worktrees', id), 'status', '--porcelain')).toBe('');
      const replay = await replayRun(id, { storeDir });
      expect(replay.verified, JSON.stringify(replay.divergence)).toBe(true);
      expect(replay.segments).toBe(2);
    }
    expect((await gitOut(repo, 'worktree', 'list')).split('\n')).toHaveLength(TASKS + 1);
    expect(processesIn(join(storeDir, 'worktrees'))).toEqual([]);
  }, 90_000);
});
