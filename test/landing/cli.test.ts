import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';
import { gitOut, gitRepo } from '../queue/helpers.js';
import { buildCase, git, type CorpusCase } from './corpus.js';

/**
 * The landing from the command line: overlap warnings after real `obra work` iterations (`obra status`, its
 * --json, `obra show`), `obra merge --all` with the strategy from the environment, and a queue SIGKILLed while a
 * landing's check runs, taken up again by the next `obra merge --all`.
 */

/** Every session: turn 1 writes part-1.txt, turn 2 part-2.txt and is done; the contents differ per call. */
const REPLIES = JSON.stringify([
  { result: 'Added the first part.\nSTATUS: CONTINUE', files: { 'part-1.txt': 'call {{n}}\n' } },
  { result: 'Finished the second part.\nSTATUS: DONE', files: { 'part-2.txt': 'call {{n}}\n' } },
]);

describe('overlap warnings and the merge queue from the CLI', () => {
  it('warns on both tasks of a conflicting pair after their iterations, then lands the first and stops at the second (exit 11)', async () => {
    const box = sandbox();
    const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: REPLIES, FAKE_CLAUDE_REPLY_BY: 'turn' };
    const repo = await gitRepo(join(box.dir, 'repo'));
    const submit = async (task: string) => (await obra(['submit', '--task', task, '--check', 'test -f part-2.txt', '--run-id', task], { cwd: repo, env })).stdout.trim();
    const a = await submit('first');
    const b = await submit('second');
    const worked = await obra(['work', '--until-idle', '--concurrency', '1'], { cwd: repo, env });
    expect(worked.exitCode, worked.stderr).toBe(0);

    const status = await obra(['status'], { cwd: repo, env });
    expect(status.exitCode).toBe(0);
    const rows = status.stdout.split('\n');
    // The warning line follows each task's own row, naming the other task and the files.
    expect(rows[rows.findIndex((r) => r.startsWith(`${a} `)) + 1]).toBe(`  ! conflicts with run ${b} (obra/${b}) in part-1.txt, part-2.txt`);
    expect(rows[rows.findIndex((r) => r.startsWith(`${b} `)) + 1]).toBe(`  ! conflicts with run ${a} (obra/${a}) in part-1.txt, part-2.txt`);
    const json = JSON.parse((await obra(['status', '--json'], { cwd: repo, env })).stdout) as { runId: string; conflicts: unknown[] }[];
    expect(json.find((l) => l.runId === a)!.conflicts).toEqual([{ with: 'task', runId: b, branch: `obra/${b}`, files: ['part-1.txt', 'part-2.txt'] }]);
    const show = await obra(['show', a], { cwd: repo, env });
    expect(show.stdout).toContain(`Warning: its branch conflicts with run ${b} (obra/${b}) in part-1.txt, part-2.txt`);

    // The strategy from the environment (config merge.strategy).
    const merged = await obra(['merge', '--all'], { cwd: repo, env: { ...env, OBRA_MERGE__STRATEGY: 'squash' } });
    expect(merged.exitCode).toBe(11);
    const landed = await gitOut(repo, 'rev-parse', 'main');
    expect(merged.stdout.split('\n').filter(Boolean)).toEqual([
      `[1/2] ${a}: landed obra/${a} on main (squash) as ${landed.slice(0, 12)}; 1 check passed in ${/passed in (\d+\.\d) s/.exec(merged.stdout)![1]} s`,
      `[2/2] ${b}: conflicts with main in part-1.txt, part-2.txt — stopped`,
    ]);
    expect(merged.stderr).toBe(
      `obra: ${b} (obra/${b}) conflicts with main in part-1.txt, part-2.txt (squash) — the queue stopped there, after 1 landing, with main at ${landed.slice(0, 12)}; resolve it (\`git -C ${repo} merge obra/${b}\`) or discard the task, then run the queue again`,
    );
    // One squashed commit, the user's checkout on it and clean; a is merged now, and no pair is left to warn on.
    expect(await gitOut(repo, 'log', '--format=%s', '-1')).toBe(`first (obra run ${a})`);
    expect(await gitOut(repo, 'status', '--porcelain')).toBe('');
    expect(readFileSync(join(repo, 'part-1.txt'), 'utf8')).toBe('call 1\n');
    const after = JSON.parse((await obra(['status', '--json'], { cwd: repo, env })).stdout) as { runId: string; branchOutcome: string | null; conflicts: unknown[] }[];
    expect(after.find((l) => l.runId === a)).toMatchObject({ branchOutcome: 'merged', conflicts: [] });
    // b is told where it stands now: against main, which has a's work.
    expect(after.find((l) => l.runId === b)!.conflicts).toEqual([{ with: 'base', runId: null, branch: 'main', files: ['part-1.txt', 'part-2.txt'] }]);
    expect((await obra(['status'], { cwd: repo, env })).stdout).toContain('\n  ! conflicts with main in part-1.txt, part-2.txt');

    const bad = await obra(['merge', a, b, '--strategy', 'octopus'], { cwd: repo, env });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toBe('obra: --strategy: "octopus" is not one of merge, rebase, squash');
    const both = await obra(['merge', a, '--all'], { cwd: repo, env });
    expect(both.stderr).toBe('obra: give either run ids or --all, not both');
  }, 90_000);

  it('a queue SIGKILLed while a landing check runs is taken up by the next `obra merge --all` and ends with the same tree', async () => {
    const caseIn = (root: string): CorpusCase => ({
      name: 'kill',
      files: { 'README.md': '# k\n' },
      // The second check of the queue (the second landing's) waits for RELEASE: the test kills the queue then.
      checks: [`echo x >> ${root}/checks.log; if [ "$(wc -l < ${root}/checks.log)" -eq 2 ]; then while [ ! -e ${root}/RELEASE ]; do sleep 0.05; done; fi`],
      tasks: [
        { name: 'a', edits: [{ write: { 'a.txt': 'a\n' } }] },
        { name: 'b', edits: [{ write: { 'b.txt': 'b\n' } }] },
        { name: 'c', edits: [{ write: { 'c.txt': 'c\n' } }] },
      ],
    });
    const run = async () => {
      const root = mkdtempSync(join(tmpdir(), 'obra-landing-kill-'));
      return { root, built: await buildCase(caseIn(root), { root }) };
    };
    const reference = await run();
    writeFileSync(join(reference.root, 'RELEASE'), '');
    const straight = await obra(['merge', '--all', '--db', reference.built.storeDir], { cwd: reference.built.repo });
    expect(straight.exitCode, straight.stderr).toBe(0);

    const { root, built } = await run();
    const queue = execa('node', [CLI, 'merge', '--all', '--db', built.storeDir], { cwd: built.repo, reject: false });
    await waitFor(() => existsSync(join(root, 'checks.log')) && readFileSync(join(root, 'checks.log'), 'utf8').split('\n').length === 3, { what: 'the second landing check', timeoutMs: 20_000 });
    queue.kill('SIGKILL');
    await queue;
    writeFileSync(join(root, 'RELEASE'), '');
    // Cut in the second landing: main has the first only, the checkout is clean, the queue file is there.
    const firstOnly = await git(built.repo, 'rev-parse', 'main');
    expect(await git(built.repo, 'ls-tree', '--name-only', 'main')).toBe('README.md\na.txt');
    expect(await git(built.repo, 'status', '--porcelain')).toBe('');
    expect(existsSync(join(built.storeDir, 'merge-queue.json'))).toBe(true);

    const resumed = await obra(['merge', '--all', '--db', built.storeDir], { cwd: built.repo });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const lines = resumed.stdout.split('\n').filter(Boolean);
    expect(lines[0]).toMatch(/^taking up the merge queue started at \S+ \(merge\): 2 tasks$/);
    expect(lines.slice(1, 3).map((l) => l.split(':')[0])).toEqual(['[1/2] kill-b', '[2/2] kill-c']);
    expect(lines[3]).toBe('landed 2 tasks; every landing\'s checks passed');
    expect(await git(built.repo, 'rev-list', '--count', '--first-parent', `${firstOnly}..main`)).toBe('2');
    expect(await git(built.repo, 'rev-parse', 'main^{tree}')).toBe(await git(reference.built.repo, 'rev-parse', 'main^{tree}'));
    expect(existsSync(join(built.storeDir, 'merge-queue.json'))).toBe(false);
    expect(await git(built.repo, 'worktree', 'list')).not.toContain('/landing/');
    expect(await git(built.repo, 'status', '--porcelain')).toBe('');
  }, 90_000);
});
