import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { taskLines } from '../../src/queue/board.js';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { gitOut, gitRepo } from './helpers.js';

/**
 * The queue from the command line, with the fake Claude CLI, in a real git repository: a worktree and a branch
 * per task, a commit per iteration, then `obra diff`, `obra merge`, `obra discard` and their refusals.
 */

/** Every session: turn 1 writes part-1.txt and goes on, turn 2 writes part-2.txt and is done. Contents differ per call. */
const REPLIES = JSON.stringify([
  { result: 'Added the first part.\nSTATUS: CONTINUE', files: { 'part-1.txt': 'call {{n}}\n' } },
  { result: 'Finished the second part.\nSTATUS: DONE', files: { 'part-2.txt': 'call {{n}}\n' } },
]);

function setup() {
  const box = sandbox();
  const log = join(box.dir, 'fake.log');
  const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: REPLIES, FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LOG: log };
  return { ...box, env, log, calls: () => readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { cwd: string; outcome?: string }) };
}

describe('obra submit / work / diff / merge / discard in a git repository', () => {
  it('gives each task a worktree and a branch, commits every iteration, and merges or discards it', async () => {
    const s = setup();
    const repo = await gitRepo(join(s.dir, 'repo'));
    const head = await gitOut(repo, 'rev-parse', 'HEAD');
    // The default store (.obra in the current folder) is inside the user's checkout here.
    const submit = async (task: string) => {
      const r = await obra(['submit', '--task', task, '--check', 'test -f part-2.txt', '--json'], { cwd: repo, env: s.env });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      return (JSON.parse(r.stdout) as { runId: string }).runId;
    };
    const a = await submit('Write the two parts');
    const b = await submit('Write the two parts too');
    // The branches exist from the submission on, at the base; the worktrees come when a worker starts them.
    expect(await gitOut(repo, 'rev-parse', `obra/${a}`, `obra/${b}`)).toBe(`${head}\n${head}`);
    expect(existsSync(join(repo, '.obra/worktrees', a))).toBe(false);

    const worked = await obra(['work', '--until-idle', '--concurrency', '2'], { cwd: repo, env: s.env });
    expect(worked.exitCode, worked.stderr).toBe(0);
    expect(worked.stderr).toContain(`[${a}] done`);
    expect(worked.stderr).toContain(`[${b}] done`);

    for (const id of [a, b]) {
      const tree = join(repo, '.obra/worktrees', id);
      // Two iterations, two commits, with the iteration's number, decision and the answer's first line.
      expect(await gitOut(repo, 'log', '--format=%s', `main..obra/${id}`)).toBe(
        [`obra ${id} iteration 2: done — Finished the second part.`, `obra ${id} iteration 1: proceed — Added the first part.`].join('\n'),
      );
      expect(await gitOut(repo, 'show', '--name-only', '--format=', `obra/${id}~1`)).toBe('part-1.txt');
      expect(await gitOut(tree, 'status', '--porcelain')).toBe('');
      expect(await gitOut(tree, 'rev-parse', '--abbrev-ref', 'HEAD')).toBe(`obra/${id}`);
    }
    // The agent worked in the worktrees, never in the user's checkout, which stays clean (the store is excluded).
    const cwds = new Set(s.calls().map((c) => c.cwd));
    expect([...cwds].sort()).toEqual([join(repo, '.obra/worktrees', a), join(repo, '.obra/worktrees', b)].sort());
    expect(await gitOut(repo, 'status', '--porcelain')).toBe('');
    expect(existsSync(join(repo, 'part-1.txt'))).toBe(false);

    const diff = await obra(['diff', a], { cwd: repo, env: s.env });
    expect(diff.exitCode).toBe(0);
    expect(diff.stdout).toMatch(/^diff --git a\/part-1.txt b\/part-1.txt\n/);
    expect(diff.stdout).toContain('+++ b/part-2.txt');
    expect(diff.stdout).not.toContain('README.md');

    // A dirty checkout: refused, nothing changed.
    writeFileSync(join(repo, 'notes.txt'), 'mine\n');
    const dirty = await obra(['merge', a], { cwd: repo, env: s.env });
    expect(dirty.exitCode).toBe(2);
    expect(dirty.stderr).toBe(`obra: ${repo} has uncommitted changes (notes.txt) — commit or stash them first; nothing was merged`);
    expect(await gitOut(repo, 'rev-parse', 'HEAD')).toBe(head);

    await gitOut(repo, 'rm', '-q', '--cached', '--ignore-unmatch', 'notes.txt');
    writeFileSync(join(repo, 'notes.txt'), '');
    await gitOut(repo, '-c', 'user.name=T', '-c', 'user.email=t@x', 'stash', '-u', '-q');
    const merged = await obra(['merge', a], { cwd: repo, env: s.env });
    expect(merged.exitCode, merged.stderr).toBe(0);
    expect(merged.stdout).toMatch(new RegExp(`^merged obra/${a} into main in ${repo} \\([0-9a-f]{12}\\)$`));
    expect(await gitOut(repo, 'log', '-1', '--format=%s')).toBe(`Merge obra/${a} (obra run ${a})`);
    expect(readFileSync(join(repo, 'part-2.txt'), 'utf8')).toMatch(/^call \d+\n$/);

    const mergeOfA = await gitOut(repo, 'rev-parse', 'HEAD');
    // Merged again: nothing changes, and its own merge is named.
    const twice = await obra(['merge', a], { cwd: repo, env: s.env });
    expect(twice.exitCode, twice.stderr).toBe(0);
    expect(twice.stdout).toBe(`obra/${a} was merged into main in ${repo} already (${mergeOfA.slice(0, 12)}); nothing was changed`);

    // The other task wrote the same files differently: its merge conflicts, is undone, and says where.
    const before = await gitOut(repo, 'rev-parse', 'HEAD');
    const conflict = await obra(['merge', b], { cwd: repo, env: s.env });
    expect(conflict.exitCode).toBe(11);
    expect(conflict.stderr).toBe(
      `obra: cannot merge obra/${b} into main: it conflicts with main in part-1.txt, part-2.txt — nothing was changed; merge it yourself (\`git -C ${repo} merge obra/${b}\`) to resolve it, or have an agent resolve it (\`obra merge --resolve ${b}\`)`,
    );
    expect(await gitOut(repo, 'rev-parse', 'HEAD')).toBe(before);
    expect(await gitOut(repo, 'status', '--porcelain')).toBe('');
    expect(existsSync(join(repo, '.git/MERGE_HEAD'))).toBe(false);

    const discarded = await obra(['discard', b], { cwd: repo, env: s.env });
    expect(discarded.exitCode, discarded.stderr).toBe(0);
    expect(existsSync(join(repo, '.obra/worktrees', b))).toBe(false);
    expect(await gitOut(repo, 'branch', '--list', `obra/${b}`)).toBe('');
    expect(await gitOut(repo, 'worktree', 'list')).not.toContain(b);
    const again = await obra(['diff', b], { cwd: repo, env: s.env });
    expect(again.stderr).toBe(`obra: run ${b}'s worktree and branch were discarded`);

    const status = await obra(['status', '--json'], { cwd: repo, env: s.env });
    const lines = JSON.parse(status.stdout) as { runId: string; status: string; branch: string | null; mergedInto: string | null }[];
    expect(lines.find((l) => l.runId === a)).toMatchObject({ status: 'done', branchOutcome: 'merged', branch: `obra/${a}`, mergedInto: `main @ ${mergeOfA.slice(0, 8)}` });
    expect(lines.find((l) => l.runId === b)).toMatchObject({ status: 'done', branchOutcome: 'discarded', branch: null, mergedInto: null });
    // The table says so: merged, discarded.
    const table = (await obra(['status'], { cwd: repo, env: s.env })).stdout.split('\n');
    expect(table.find((l) => l.startsWith(a))).toMatch(new RegExp(`^${a} +merged +claude +done +2 +done +`));
    expect(table.find((l) => l.startsWith(b))).toMatch(new RegExp(`^${b} +discarded +claude +done +2 +done +`));
  }, 60_000);

  it('starts a task that follows another from where that one ended, unless it was given a base of its own', async () => {
    const s = setup();
    const repo = await gitRepo(join(s.dir, 'repo'));
    const head = await gitOut(repo, 'rev-parse', 'HEAD');
    const submit = async (...args: string[]) => {
      const r = await obra(['submit', ...args, '--json'], { cwd: repo, env: s.env });
      expect(r.exitCode, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { runId: string }).runId;
    };
    const first = await submit('--task', 'Write the two parts');
    const next = await submit('--task', 'Rewrite the two parts', '--after', first);
    const apart = await submit('--task', 'Write them from main', '--after', first, '--base', 'main');
    const worked = await obra(['work', '--until-idle', '--concurrency', '3'], { cwd: repo, env: s.env });
    expect(worked.exitCode, worked.stderr).toBe(0);

    const firstEnd = await gitOut(repo, 'rev-parse', `obra/${first}`);
    // The follower's branch holds the first task's commits, then its own two; the one with --base main does not.
    expect(await gitOut(repo, 'rev-parse', `obra/${next}~2`)).toBe(firstEnd);
    expect(await gitOut(repo, 'rev-parse', `obra/${apart}~2`)).toBe(head);
    const runFile = (id: string) => JSON.parse(readFileSync(join(repo, '.obra/runs', id, 'run.json'), 'utf8')) as { queue: { workspace: Record<string, unknown> } };
    expect(runFile(next).queue.workspace).toMatchObject({ base: `obra/${first}`, baseCommit: firstEnd, follows: `obra/${first}`, baseBranch: 'main' });
    expect(runFile(apart).queue.workspace).toMatchObject({ base: 'main', baseCommit: head });
    expect(runFile(apart).queue.workspace.follows).toBeUndefined();
    // Its first call already saw the first task's files.
    const nextTree = join(repo, '.obra/worktrees', next);
    expect(s.calls().filter((c) => c.cwd === nextTree)).toHaveLength(2);

    // Its diff is its own work, against where it started; merged after the first, it applies cleanly.
    const diff = await obra(['diff', next], { cwd: repo, env: s.env });
    expect(diff.stdout).toMatch(/^diff --git a\/part-1.txt b\/part-1.txt\nindex [0-9a-f]+\.\.[0-9a-f]+ 100644\n--- a\/part-1.txt\n/);
    for (const id of [first, next]) {
      const merged = await obra(['merge', id], { cwd: repo, env: s.env });
      expect(merged.exitCode, merged.stderr).toBe(0);
    }
    expect(readFileSync(join(repo, 'part-1.txt'), 'utf8')).toBe(await gitOut(repo, 'show', `obra/${next}:part-1.txt`).then((t) => `${t}\n`));
  }, 60_000);

  it('starts a follower from the merge of the task it follows when that one was merged and discarded before it started', async () => {
    const s = setup();
    const repo = await gitRepo(join(s.dir, 'repo'));
    const run = async (args: string[]) => {
      const r = await obra(args, { cwd: repo, env: s.env });
      expect(r.exitCode, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    const first = await run(['submit', '--task', 'Write the two parts']);
    const next = await run(['submit', '--task', 'Rewrite the two parts', '--after', first]);
    await run(['pause', next]);
    await run(['work', '--until-idle']);
    await run(['merge', first]);
    const mergeCommit = await gitOut(repo, 'rev-parse', 'HEAD');
    await run(['discard', first]);
    await run(['resume', next]);
    // Its two commits sit on the merge (the first task's work, as merged), not on the commit it was submitted at.
    expect(await gitOut(repo, 'rev-parse', `obra/${next}~2`)).toBe(mergeCommit);
    const space = (JSON.parse(readFileSync(join(repo, '.obra/runs', next, 'run.json'), 'utf8')) as { queue: { workspace: Record<string, unknown> } }).queue.workspace;
    expect(space).toMatchObject({ base: mergeCommit, baseCommit: mergeCommit, follows: `obra/${first}` });
    await run(['merge', next]);
  }, 60_000);

  it('refuses a bad base, a taken branch, a plain folder with --base, and a bad tasks file, queueing nothing', async () => {
    const s = setup();
    const repo = await gitRepo(join(s.dir, 'repo'));
    const at = { cwd: s.dir, env: s.env };
    const badBase = await obra(['submit', '--task', 'x', '--repo', repo, '--base', 'nope', '--db', 'store'], at);
    expect(badBase.exitCode).toBe(2);
    expect(badBase.stderr).toBe(`obra: --base nope does not exist in ${repo} — name a branch, a tag or a commit there (\`git -C ${repo} branch -a\` lists the branches)`);

    await gitOut(repo, 'branch', 'obra/taken');
    const taken = await obra(['submit', '--task', 'x', '--repo', repo, '--run-id', 'taken', '--db', 'store'], at);
    expect(taken.stderr).toBe(`obra: the branch obra/taken already exists in ${repo} — give the task another --run-id, or delete that branch first`);

    const plain = await obra(['submit', '--task', 'x', '--repo', s.dir, '--base', 'main', '--db', 'store'], at);
    expect(plain.stderr).toBe(`obra: --base main needs a git repository, and ${s.dir} is not in one`);

    writeFileSync(
      join(s.dir, 'tasks.yaml'),
      ['- task: Add validation', '  repo: repo', '  name: validation', '- task: Document it', '  after: validation', '  priority: high', '- tsk: typo', '  repo: repo', ''].join('\n'),
    );
    const file = await obra(['submit', '--file', 'tasks.yaml', '--db', 'store'], at);
    expect(file.exitCode).toBe(2);
    expect(file.stderr).toBe(
      [
        `obra: ${join(s.dir, 'tasks.yaml')}:6: task 2: priority: expected a whole number`,
        `${join(s.dir, 'tasks.yaml')}:7: task 3: the field "task" is missing — say what the agent should do`,
        `${join(s.dir, 'tasks.yaml')}:7: task 3: unknown field "tsk" (the fields are task, checks, repo, base, priority, after, name, run_id, agent, agents, attempts)`,
      ].join('\n'),
    );
    // Nothing was queued, and no branch was left behind by the refused submissions.
    const runs = await obra(['runs', '--json', '--db', 'store'], at);
    expect(JSON.parse(runs.stdout || '[]')).toEqual([]);
    expect(await gitOut(repo, 'branch', '--list', 'obra/*')).toBe('obra/taken');

    // A good file: every task queued, in order, a follower pointing at the run of its name.
    writeFileSync(join(s.dir, 'tasks.yaml'), ['- task: Add validation', '  repo: repo', '  name: validation', '- task: Document it', '  repo: repo', '  after: validation', '  priority: 3', ''].join('\n'));
    const good = await obra(['submit', '--file', 'tasks.yaml', '--db', 'store', '--json'], at);
    expect(good.exitCode, good.stderr).toBe(0);
    const { runIds } = JSON.parse(good.stdout) as { runIds: string[] };
    const status = JSON.parse((await obra(['status', '--json', '--db', 'store'], at)).stdout) as { runId: string; status: string; waitingFor: string; priority: number }[];
    expect(status.map((l) => [l.runId, l.status, l.priority]).sort()).toEqual([
      [runIds[0], 'queued', 0],
      [runIds[1], 'queued', 3],
    ].sort());
    expect(status.find((l) => l.runId === runIds[1])!.waitingFor).toBe(`run ${runIds[0]} (queued) to be done`);
  }, 60_000);
});

describe('one task of many: pause, cancel, resume', () => {
  it('pauses one task and cancels another while `obra work` drives them; the paused one resumes in its worktree', async () => {
    const s = setup();
    const env = { ...s.env, FAKE_CLAUDE_LATENCY_MS: '1500' };
    const repo = await gitRepo(join(s.dir, 'repo'));
    const at = { cwd: s.dir, env };
    const submit = async (task: string) => (await obra(['submit', '--task', task, '--repo', repo, '--db', 'store'], at)).stdout.trim();
    const [paused, cancelled] = [await submit('Pause me'), await submit('Cancel me')];
    const worker = execa('node', [CLI, 'work', '--db', 'store', '--until-idle', '--concurrency', '2'], { ...at, reject: false });
    const deadline = Date.now() + 20_000;
    while (!taskLines(join(s.dir, 'store')).every((l) => l.status === 'running')) {
      if (Date.now() > deadline) throw new Error('the tasks never started');
      await new Promise((r) => setTimeout(r, 50));
    }
    const pause = await obra(['pause', paused, '--db', 'store'], at);
    expect(pause.exitCode, pause.stderr).toBe(0);
    const cancel = await obra(['cancel', cancelled, '--db', 'store'], at);
    expect(cancel.exitCode, cancel.stderr).toBe(0);
    const ended = await worker;
    // The worst of the two: cancelled (6); each said what happened to it.
    expect(ended.exitCode, ended.stderr).toBe(6);
    expect(ended.stderr).toContain(`[${paused}] paused`);
    expect(ended.stderr).toContain(`[${cancelled}] cancelled`);
    // The pause came after iteration 1 was persisted and committed.
    expect(await gitOut(repo, 'rev-list', '--count', `main..obra/${paused}`)).toBe('1');

    const resumed = await obra(['resume', paused, '--db', 'store', '--json'], { ...at, env: { ...env, FAKE_CLAUDE_LATENCY_MS: '0' } });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect((JSON.parse(resumed.stdout) as { status: string; workdir: string }).workdir).toBe(join(s.dir, 'store', 'worktrees', paused));
    expect(await gitOut(repo, 'rev-list', '--count', `main..obra/${paused}`)).toBe('2');
    const cwds = new Set(s.calls().filter((c) => c.cwd.includes(paused)).map((c) => c.cwd));
    expect([...cwds]).toEqual([join(s.dir, 'store', 'worktrees', paused)]);
  }, 60_000);
});
