import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { IterationRecord } from '../../src/core/types.js';
import { taskLines } from '../../src/queue/board.js';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { gitOut, gitRepo } from './helpers.js';

/**
 * `obra merge --resolve`: a conflicting landing becomes a queued task, driven by the fake Claude CLI in a real
 * git repository — the resolution that lands, the one that leaves markers (refused by the gate, answered by a
 * human), an edit against a delete — and followers that start from what landed.
 */

type Reply = { result: string; files?: Record<string, string>; bash?: string[] };

function setup() {
  const box = sandbox();
  let phase = 0;
  // The store and the config live beside the repository: the user's checkout stays clean.
  writeFileSync(join(box.dir, 'obra.yaml'), ['agent:', '  local:', "    allowed_tools: ['Bash(rm:*)']", ''].join('\n'));
  const envWith = (replies: Reply[]) => {
    // Each phase counts the fake's calls from 1 (its own counter folder).
    const state = join(box.dir, `fake-state-${++phase}`);
    mkdirSync(state, { recursive: true });
    return { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), FAKE_CLAUDE_STATE_DIR: state };
  };
  const run = (args: string[], replies: Reply[] = [{ result: 'nothing to do\nSTATUS: DONE' }]) => obra([...args, '--db', 'store'], { cwd: box.dir, env: envWith(replies) });
  const ok = async (args: string[], replies?: Reply[]) => {
    const r = await run(args, replies);
    expect(r.exitCode, `obra ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  const runFile = (id: string) => JSON.parse(readFileSync(join(box.dir, 'store/runs', id, 'run.json'), 'utf8')) as { status: string; question: string | null; task: { checks: string[] }; queue: Record<string, any> };
  const iterations = (id: string) => readFileSync(join(box.dir, 'store/runs', id, 'iterations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as IterationRecord);
  // What `obra status --json` prints, read in this process (a CLI start per look would make the tests slow).
  const statusOf = async (id: string) => taskLines(join(box.dir, 'store')).find((l) => l.runId === id)!;
  return { ...box, run, ok, runFile, iterations, statusOf };
}

type TaskSpec = [task: string, check: string, reply: Reply];

/** Two tasks submitted, then driven to done by one `obra work`, one at a time: the first gets the first answer. */
async function doneTasks(s: ReturnType<typeof setup>, repo: string, tasks: [TaskSpec, TaskSpec]): Promise<[string, string]> {
  const ids: string[] = [];
  for (const [task, check] of tasks) ids.push(await s.ok(['submit', '--task', task, '--repo', repo, '--check', check]));
  const worked = await s.run(['work', '--until-idle', '--concurrency', '1'], tasks.map(([, , reply]) => reply));
  expect(worked.exitCode, worked.stderr).toBe(0);
  for (const id of ids) expect(s.runFile(id).status).toBe('done');
  return [ids[0]!, ids[1]!];
}

const SHARED = 'colour: red\nsize: small\n';
const blue: Reply = { result: 'Made the colour blue in shared.txt.\nSTATUS: DONE', files: { 'shared.txt': 'colour: blue\nsize: small\n' } };
const bold: Reply = { result: 'Made the colour bold in shared.txt.\nSTATUS: DONE', files: { 'shared.txt': 'colour: red, bold\nsize: small\n' } };
const resolved: Reply = { result: 'Resolved the conflict in shared.txt: the colour is blue and bold, as both tasks meant.\nSTATUS: DONE', files: { 'shared.txt': 'colour: blue, bold\nsize: small\n' } };

/** A repository and two done tasks that change the same line of shared.txt: blue (a), then bold (b). */
async function blueAndBold(s: ReturnType<typeof setup>): Promise<{ repo: string; a: string; b: string }> {
  const repo = await gitRepo(join(s.dir, 'repo'), { 'shared.txt': SHARED });
  const [a, b] = await doneTasks(s, repo, [
    ['Make the colour blue', 'grep -q blue shared.txt', blue],
    ['Make the colour bold', 'grep -q bold shared.txt', bold],
  ]);
  return { repo, a, b };
}

describe('obra merge --resolve: a conflict resolved by an agent under the checks', () => {
  it('queues a resolution with the hunks and both intents; once done, `obra merge` lands one merge commit with both; a follower starts from it', async () => {
    const s = setup();
    const { repo, a, b } = await blueAndBold(s);
    // A task that follows b, held back until b has landed.
    const follower = await s.ok(['submit', '--task', 'Make it large', '--repo', repo, '--after', b]);
    await s.ok(['pause', follower]);
    await s.ok(['merge', a]);
    const mainBefore = await gitOut(repo, 'rev-parse', 'main');
    const bTip = await gitOut(repo, 'rev-parse', `obra/${b}`);

    // By default a conflict is the user's: exit 11, nothing changed, and the way to hand it to an agent.
    const refused = await s.run(['merge', b]);
    expect(refused.exitCode).toBe(11);
    expect(refused.stderr).toBe(
      `obra: cannot merge obra/${b} into main: it conflicts with main in shared.txt — nothing was changed; merge it yourself (\`git -C ${repo} merge obra/${b}\`) to resolve it, or have an agent resolve it (\`obra merge --resolve ${b}\`)`,
    );

    const queued = await s.run(['merge', '--resolve', b]);
    expect(queued.exitCode, queued.stderr).toBe(12);
    const r = /queued run (\S+) to resolve it/.exec(queued.stdout)![1]!;
    expect(queued.stdout.trim()).toBe(`obra/${b} conflicts with main in shared.txt: queued run ${r} to resolve it (\`obra work\` drives it); \`obra merge ${b}\` lands it once that run is done; nothing was changed`);
    expect(await gitOut(repo, 'rev-parse', 'main')).toBe(mainBefore);
    // Linked both ways, visible in `obra status`; its checks are b's.
    expect(await s.statusOf(r)).toMatchObject({ status: 'queued', resolves: b, resolvedBy: null, branch: `obra/${r}` });
    expect((await s.statusOf(r)).task).toMatch(new RegExp(`^Resolve the merge conflict of run ${b}: its branch obra/${b} conflicts with main\\.`));
    expect(await s.statusOf(b)).toMatchObject({ status: 'done', resolvedBy: r, waitingFor: `run ${r} (queued) to resolve its conflict` });
    expect(s.runFile(r).task.checks).toEqual(['grep -q bold shared.txt']);
    expect(s.runFile(r).queue.resolves).toEqual({ runId: b, branch: `obra/${b}`, tip: bTip, files: ['shared.txt'] });
    // Landing it (or resolving it again) while it is under way is refused (exit 12): no second resolution.
    for (const args of [['merge', b], ['merge', '--resolve', b]]) {
      const early = await s.run(args);
      expect(early.exitCode).toBe(12);
      expect(early.stderr).toBe(`obra: the conflict of obra/${b} with main is being resolved by run ${r} (queued) — \`obra merge ${b}\` lands it once that run is done; nothing was changed`);
    }

    const worked = await s.run(['work', '--until-idle'], [resolved]);
    expect(worked.exitCode, worked.stderr).toBe(0);
    const [record] = s.iterations(r);
    // The prompt: what to do, git's conflict, the hunk with line numbers, and both sides' intent.
    expect(record!.prompt).toContain(`CONFLICT (content): Merge conflict in shared.txt\n\nIn each hunk below (numbered as in the file), the side after \`<<<<<<<\` is main's, the side before \`>>>>>>>\` is obra/${b}'s.`);
    expect(record!.prompt).toMatch(/### shared\.txt\n\n```\n1  <<<<<<< [0-9a-f]{40}\n2  colour: blue\n3  =======\n4  colour: red, bold\n5  >>>>>>> [0-9a-f]{40}\n6  size: small\n/);
    expect(record!.prompt).toContain(`## What obra/${b} meant (run ${b})\n\nIts task: Make the colour bold\n\nIts last answer: Made the colour bold in shared.txt.\n\n## What main holds`);
    expect(record!.prompt).toContain(`Tasks that landed on main since obra/${b} started:\n- run ${a}: Make the colour blue\n  Its last answer: Made the colour blue in shared.txt.\n\n`);
    expect(record!.prompt).toMatch(new RegExp(`Its commits since then, newest first:\\n[0-9a-f]+ Merge obra/${a} \\(obra run ${a}\\)\\n[0-9a-f]+ obra ${a} iteration 1: done`));
    expect(record!.prompt).toContain("The result must pass the task's checks: `grep -q bold shared.txt`.");
    // Judged with b's check and Obra's gate, both green.
    expect(record!.checks.map((c) => [c.command, c.exitCode])).toEqual([
      ['grep -q bold shared.txt', 0],
      ['obra: no conflict markers left', 0],
    ]);
    expect(record!.decisionRule).toBe('acceptedAsDone');
    // Its commit concluded the merge it worked in: the base first, then b's tip.
    expect(await gitOut(repo, 'log', '-1', '--format=%P', `obra/${r}`)).toBe(`${mainBefore} ${bTip}`);
    expect(await s.statusOf(b)).toMatchObject({ waitingFor: `\`obra merge ${b}\` (run ${r} resolved its conflict)` });

    const landed = await s.run(['merge', b]);
    expect(landed.exitCode, landed.stderr).toBe(0);
    const head = await gitOut(repo, 'rev-parse', 'main');
    expect(landed.stdout.trim()).toBe(`merged obra/${b} into main in ${repo} (${head.slice(0, 12)}; conflicts resolved by run ${r}, fast-forward)`);
    expect(await gitOut(repo, 'log', '-1', '--format=%P%n%s', 'main')).toBe(`${mainBefore} ${bTip}\nMerge obra/${b} (obra run ${b}; conflicts resolved by obra run ${r})`);
    // The base holds both intents, and both tasks' checks pass on it.
    expect(readFileSync(join(repo, 'shared.txt'), 'utf8')).toBe('colour: blue, bold\nsize: small\n');
    expect(await gitOut(repo, 'status', '--porcelain')).toBe('');
    expect(await s.statusOf(b)).toMatchObject({ branchOutcome: 'merged', mergedInto: `main @ ${head.slice(0, 8)}`, waitingFor: null });
    expect(await s.statusOf(r)).toMatchObject({ status: 'done', branchOutcome: 'merged', resolves: b });
    // Merged again: nothing changes.
    expect((await s.ok(['merge', b]))).toBe(`obra/${b} was merged into main in ${repo} already (${head.slice(0, 12)}); nothing was changed`);

    // The follower of b starts from what landed (the resolution included), not from b's tip.
    await s.ok(['resume', follower], [{ result: 'Made it large.\nSTATUS: DONE', files: { 'size.txt': 'large\n' } }]);
    expect(await gitOut(repo, 'rev-parse', `obra/${follower}~1`)).toBe(head);
    expect(s.runFile(follower).queue.workspace).toMatchObject({ base: head, baseCommit: head, follows: `obra/${b}` });
    expect(await gitOut(repo, 'show', `obra/${follower}:shared.txt`)).toBe('colour: blue, bold\nsize: small');
  }, 90_000);

  it('refuses a resolution that leaves markers (the gate), asks a human naming the files, and goes on with the answer', async () => {
    const s = setup();
    const { repo, a, b } = await blueAndBold(s);
    await s.ok(['merge', a]);
    const mainBefore = await gitOut(repo, 'rev-parse', 'main');
    const queued = await s.run(['merge', '--resolve', b]);
    expect(queued.exitCode, queued.stderr).toBe(12);
    const r = /queued run (\S+) to resolve it/.exec(queued.stdout)![1]!;

    // It says done without touching the file: b's check passes (the markers hold "bold"), the gate does not.
    const sloppy: Reply = { result: 'Resolved the conflict in shared.txt.\nSTATUS: DONE' };
    const worked = await s.run(['work', '--until-idle'], [sloppy, resolved]);
    expect(worked.exitCode).toBe(3);
    const file = s.runFile(r);
    expect(file.status).toBe('escalated');
    const worktree = join(s.dir, 'store/worktrees', r);
    expect(file.question).toBe(
      `the resolution says it is done, but conflict markers (<<<<<<<, =======, >>>>>>>) are left in shared.txt (lines 1, 3, 5) — it can be done only without them: answer with how to resolve shared.txt (\`obra answer ${r} "..."\`), or edit them in ${worktree} yourself and answer "go on"`,
    );
    const [first] = s.iterations(r);
    expect(first!.checks.map((c) => [c.command, c.exitCode, c.outputTail])).toEqual([
      ['grep -q bold shared.txt', 0, ''],
      ['obra: no conflict markers left', 1, 'conflict markers (<<<<<<<, =======, >>>>>>>) are left in shared.txt (lines 1, 3, 5)'],
    ]);
    expect(first!).toMatchObject({ decision: 'escalate', decisionRule: 'conflictMarkersLeft' });
    expect((await s.statusOf(r)).waitingFor).toMatch(/^a human: the resolution says it is done, but conflict markers/);
    // Not done: b cannot land yet.
    expect((await s.run(['merge', b])).exitCode).toBe(12);

    const answered = await s.run(['answer', r, 'Keep both: the colour is blue and bold.'], [resolved]);
    expect(answered.exitCode, answered.stderr).toBe(0);
    const second = s.iterations(r)[1]!;
    expect(second.prompt).toContain('A human reviewed the last iteration and answered: Keep both: the colour is blue and bold.');
    expect(second.checks.map((c) => [c.command, c.exitCode])).toEqual([
      ['grep -q bold shared.txt', 0],
      ['obra: no conflict markers left', 0],
    ]);
    expect(s.runFile(r).status).toBe('done');

    // The resolution lands with the task it resolves, never on its own.
    const alone = await s.run(['merge', r]);
    expect(alone.exitCode).toBe(2);
    expect(alone.stderr).toBe(`obra: run ${r} resolves the conflict of run ${b}: land it with \`obra merge ${b}\`; nothing was changed`);
    await s.ok(['merge', b]);
    expect(await s.ok(['merge', r])).toBe(`run ${r}'s resolution landed with obra/${b} already (${(await gitOut(repo, 'rev-parse', 'main')).slice(0, 12)}); nothing was changed`);
    // One merge commit on main, with the resolved tree: the markers of the first iteration never reach the base.
    expect(await gitOut(repo, 'log', '-1', '--format=%P', 'main')).toBe(`${mainBefore} ${await gitOut(repo, 'rev-parse', `obra/${b}`)}`);
    expect(await gitOut(repo, 'rev-list', '--count', `${mainBefore}..obra/${r}`)).toBe('3');
    expect(readFileSync(join(repo, 'shared.txt'), 'utf8')).toBe('colour: blue, bold\nsize: small\n');
    expect((await s.run(['work', '--until-idle'])).exitCode).toBe(0);
  }, 90_000);

  it('resolves an edit against a delete: the prompt says which side deleted it, and the deletion the agent makes lands', async () => {
    const s = setup();
    const repo = await gitRepo(join(s.dir, 'repo'), { 'old.txt': 'legacy\n', 'keep.txt': 'kept\n' });
    const [a, b] = await doneTasks(s, repo, [
      ['Remove the legacy file old.txt', 'test ! -e old.txt', { result: 'Removed old.txt.\nSTATUS: DONE', bash: ['rm old.txt'] }],
      ['Mark the legacy notes as updated', 'grep -rq updated .', { result: 'Marked old.txt as updated.\nSTATUS: DONE', files: { 'old.txt': 'legacy, updated\n' } }],
    ]);
    await s.ok(['merge', a]);
    const queued = await s.run(['merge', '--resolve', b]);
    expect(queued.exitCode, queued.stderr).toBe(12);
    expect(queued.stdout).toContain(`obra/${b} conflicts with main in old.txt: queued run`);
    const r = /queued run (\S+) to resolve it/.exec(queued.stdout)![1]!;

    const moved: Reply = { result: 'Resolved: old.txt stays deleted as main wants, and its update moved to notes.txt.\nSTATUS: DONE', files: { 'notes.txt': 'legacy, updated\n' }, bash: ['rm old.txt'] };
    const worked = await s.run(['work', '--until-idle'], [moved]);
    expect(worked.exitCode, worked.stderr).toBe(0);
    const [record] = s.iterations(r);
    expect(record!.prompt).toMatch(/CONFLICT \(modify\/delete\): old\.txt deleted in [0-9a-f]+ and modified in [0-9a-f]+\./);
    expect(record!.prompt).toContain('a file deleted on one side and changed on the other is kept (with the change) or deleted');
    expect(record!.checks.map((c) => [c.command, c.exitCode])).toEqual([
      ['grep -rq updated .', 0],
      ['obra: no conflict markers left', 0],
    ]);

    await s.ok(['merge', b]);
    expect(existsSync(join(repo, 'old.txt'))).toBe(false);
    expect(readFileSync(join(repo, 'notes.txt'), 'utf8')).toBe('legacy, updated\n');
    expect(await gitOut(repo, 'ls-tree', '--name-only', 'main')).toBe('keep.txt\nnotes.txt');
  }, 90_000);

  it('with merge.resolve: agent, `obra merge` resolves by an agent; --no-resolve keeps it the user\'s', async () => {
    const s = setup();
    const { repo, a, b } = await blueAndBold(s);
    await s.ok(['merge', a]);
    writeFileSync(join(s.dir, 'obra.yaml'), ['merge:', '  resolve: agent', ''].join('\n'));
    const mine = await s.run(['merge', '--no-resolve', b]);
    expect(mine.exitCode).toBe(11);
    const theirs = await s.run(['merge', b]);
    expect(theirs.exitCode, theirs.stderr).toBe(12);
    expect(theirs.stdout).toMatch(new RegExp(`^obra/${b} conflicts with main in shared\\.txt: queued run \\S+ to resolve it`));
  }, 60_000);
});

describe('chains: a follower starts from what landed', () => {
  it('starts from the merge when the task it follows was merged first, and from its branch tip when it was not', async () => {
    const s = setup();
    const repo = await gitRepo(join(s.dir, 'repo'), { 'shared.txt': SHARED });
    const first = await s.ok(['submit', '--task', 'Make the colour blue', '--repo', repo]);
    const early = await s.ok(['submit', '--task', 'Follow before the merge', '--repo', repo, '--after', first]);
    const late = await s.ok(['submit', '--task', 'Follow after the merge', '--repo', repo, '--after', first]);
    await s.ok(['pause', late]);
    // `first`, then `early` (its predecessor done, not merged): one work.
    const worked = await s.run(['work', '--until-idle'], [blue, { result: 'Followed.\nSTATUS: DONE', files: { 'early.txt': 'early\n' } }]);
    expect(worked.exitCode, worked.stderr).toBe(0);
    const firstTip = await gitOut(repo, 'rev-parse', `obra/${first}`);
    expect(await gitOut(repo, 'rev-parse', `obra/${early}~1`)).toBe(firstTip);
    expect(s.runFile(early).queue.workspace).toMatchObject({ base: `obra/${first}`, baseCommit: firstTip });

    // main moves on, then `first` is merged: `late` starts from that merge (main's other work included).
    writeFileSync(join(repo, 'other.txt'), 'other\n');
    await gitOut(repo, 'add', 'other.txt');
    await gitOut(repo, '-c', 'user.name=T', '-c', 'user.email=t@x', 'commit', '-qm', 'other work on main');
    await s.ok(['merge', first]);
    const merge = await gitOut(repo, 'rev-parse', 'main');
    await s.ok(['resume', late], [{ result: 'Followed.\nSTATUS: DONE', files: { 'late.txt': 'late\n' } }]);
    expect(await gitOut(repo, 'rev-parse', `obra/${late}~1`)).toBe(merge);
    expect(s.runFile(late).queue.workspace).toMatchObject({ base: merge, baseCommit: merge, follows: `obra/${first}` });
    expect(await gitOut(repo, 'ls-tree', '--name-only', `obra/${late}`)).toBe('late.txt\nother.txt\nshared.txt');
    // Its diff is its own work only.
    expect((await s.ok(['diff', late]))).toMatch(/^diff --git a\/late.txt b\/late.txt\n/);
  }, 60_000);
});
