import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { QualityReport } from '../../src/core/types.js';
import { DecisionEngine } from '../../src/decision/decision-engine.js';
import { CONFLICT_GATE_CHECK, runConflictGate } from '../../src/scoring/conflict-gate.js';
import { beginResolutionMerge, conflictHunks, conflictMarkersLeft, trialMerge } from '../../src/workspace/conflict.js';
import { check, task, verdict } from '../judging/helpers.js';
import { gitOut, gitRepo, scratch } from '../queue/helpers.js';

const commitAll = (dir: string, message: string) => execa('sh', ['-c', `git add -A && git -c user.name=T -c user.email=t@x commit -qm "${message}"`], { cwd: dir });
const MARKED = ['<<<<<<< HEAD', 'mine', '=======', 'theirs', '>>>>>>> other', ''].join('\n');

describe('the conflict gate: markers left in what the merge touches', () => {
  it('finds markers in changed, conflicted and new files with their lines; not in untouched files nor binaries', async () => {
    const s = scratch('obra-gate-');
    // Marker-like lines the repository holds on purpose (git's own test data, say): never read, never flagged.
    const repo = await gitRepo(join(s.root, 'repo'), { 'fixture.txt': MARKED, 'a.txt': 'a\n', 'b.txt': 'b\n' });
    const since = await gitOut(repo, 'rev-parse', 'HEAD');
    writeFileSync(join(repo, 'a.txt'), `a\n${MARKED}`);
    writeFileSync(join(repo, 'new.md'), 'Title\n=======\n');
    writeFileSync(join(repo, 'blob.bin'), Buffer.concat([Buffer.from(MARKED), Buffer.from([0, 1, 2])]));
    expect(await conflictMarkersLeft(repo, { since, files: ['b.txt'] })).toEqual([
      { path: 'a.txt', lines: [2, 4, 6] },
      // A line of exactly seven `=` is a marker to git too (`git diff --check`).
      { path: 'new.md', lines: [2] },
    ]);
    // A committed marker counts as well: the gate compares with the base, not with the last commit.
    await commitAll(repo, 'iteration');
    const gate = await runConflictGate(repo, { since, files: [] });
    expect(gate).toMatchObject({
      command: CONFLICT_GATE_CHECK,
      exitCode: 1,
      outputTail: 'conflict markers (<<<<<<<, =======, >>>>>>>) are left in a.txt (lines 2, 4, 6), new.md (line 2)',
      paths: ['a.txt', 'new.md'],
    });
    writeFileSync(join(repo, 'a.txt'), 'a, merged\n');
    writeFileSync(join(repo, 'new.md'), 'Title\n-----\n');
    expect(await runConflictGate(repo, { since, files: ['b.txt'] })).toMatchObject({ exitCode: 0, outputTail: 'no conflict marker left in the files the merge touches' });
  });

  it('a trial merge names the conflicted files, git\'s messages and the hunks with line numbers, touching no worktree', async () => {
    const s = scratch('obra-trial-');
    const repo = await gitRepo(join(s.root, 'repo'), { 'f.txt': 'one\ntwo\nthree\n', 'g.txt': 'g\n' });
    await execa('git', ['checkout', '-qb', 'side'], { cwd: repo });
    writeFileSync(join(repo, 'f.txt'), 'one\nTWO\nthree\n');
    await commitAll(repo, 'side');
    await execa('git', ['checkout', '-q', 'main'], { cwd: repo });
    writeFileSync(join(repo, 'f.txt'), 'one\n2\nthree\n');
    writeFileSync(join(repo, 'g.txt'), 'g2\n');
    await commitAll(repo, 'main');
    const merge = await trialMerge(repo, 'main', 'side');
    expect(merge).toMatchObject({ clean: false, files: ['f.txt'], messages: ['CONFLICT (content): Merge conflict in f.txt'] });
    expect((await conflictHunks(repo, merge, { context: 1 })).hunks).toEqual([{ path: 'f.txt', text: '1  one\n2  <<<<<<< main\n3  2\n4  =======\n5  TWO\n6  >>>>>>> side\n7  three' }]);
    expect(await gitOut(repo, 'status', '--porcelain')).toBe('');
    expect((await trialMerge(repo, 'main', 'main~1')).clean).toBe(true);

    // The gate holds the merge to its task: aborted, the worktree has no markers and none of the task's changes.
    const tip = await gitOut(repo, 'rev-parse', 'side');
    const gate = { since: await gitOut(repo, 'rev-parse', 'main'), files: ['f.txt'], tip };
    await execa('git', ['merge', '--no-commit', 'side'], { cwd: repo, reject: false });
    expect(await runConflictGate(repo, gate)).toMatchObject({ exitCode: 1, paths: ['f.txt'] });
    await execa('git', ['merge', '--abort'], { cwd: repo });
    expect(await runConflictGate(repo, gate)).toEqual({
      command: CONFLICT_GATE_CHECK,
      exitCode: 1,
      durationMs: expect.any(Number),
      timedOut: false,
      outputTail: `the merge of ${tip.slice(0, 12)} is no longer in progress (aborted or reset?): the worktree does not hold the task's changes — merge it again with \`git merge --no-commit ${tip}\``,
    });
    // Resolved and concluded: the task's commit is in HEAD's history, no marker is left.
    await execa('git', ['merge', '--no-commit', 'side'], { cwd: repo, reject: false });
    writeFileSync(join(repo, 'f.txt'), 'one\n2 and TWO\nthree\n');
    await commitAll(repo, 'resolved');
    expect(await runConflictGate(repo, gate)).toMatchObject({ exitCode: 0 });
  });

  it('a trial merge names a conflicted file with a non-ASCII name as it is (git quotes it without -z), and finds its hunks', async () => {
    const s = scratch('obra-trial-utf8-');
    const repo = await gitRepo(join(s.root, 'repo'), { 'é.txt': 'one\ntwo\n' });
    await execa('git', ['checkout', '-qb', 'side'], { cwd: repo });
    writeFileSync(join(repo, 'é.txt'), 'one\nTWO\n');
    await commitAll(repo, 'side');
    await execa('git', ['checkout', '-q', 'main'], { cwd: repo });
    writeFileSync(join(repo, 'é.txt'), 'one\n2\n');
    await commitAll(repo, 'main');
    const merge = await trialMerge(repo, 'main', 'side');
    expect(merge).toMatchObject({ clean: false, files: ['é.txt'], messages: ['CONFLICT (content): Merge conflict in é.txt'] });
    expect((await conflictHunks(repo, merge, { context: 1 })).hunks).toEqual([{ path: 'é.txt', text: '1  one\n2  <<<<<<< main\n3  2\n4  =======\n5  TWO\n6  >>>>>>> side' }]);
  });
});

describe('beginResolutionMerge: the merge a resolution works in', () => {
  it('starts it once: kept while in progress or concluded, started again in a worktree made anew at the base', async () => {
    const s = scratch('obra-begin-');
    const repo = await gitRepo(join(s.root, 'repo'), { 'f.txt': 'one\n' });
    await execa('git', ['checkout', '-qb', 'task'], { cwd: repo });
    writeFileSync(join(repo, 'f.txt'), 'task\n');
    await commitAll(repo, 'task');
    await execa('git', ['checkout', '-q', 'main'], { cwd: repo });
    writeFileSync(join(repo, 'f.txt'), 'main\n');
    await commitAll(repo, 'main');
    const tip = await gitOut(repo, 'rev-parse', 'task');
    const baseCommit = await gitOut(repo, 'rev-parse', 'main');
    const tree = join(s.root, 'tree');
    await execa('git', ['worktree', 'add', '-q', '-b', 'resolution', tree, baseCommit], { cwd: repo });
    const begin = () => beginResolutionMerge(tree, { tip, baseCommit, message: 'Merge task' });

    expect(await begin()).toBe(true);
    expect(await gitOut(tree, 'rev-parse', 'MERGE_HEAD')).toBe(tip);
    expect(readFileSync(join(tree, 'f.txt'), 'utf8')).toMatch(/^<<<<<<< HEAD\nmain\n=======\ntask\n>>>>>>> [0-9a-f]{40}\n$/);
    // The agent's work in progress is kept.
    writeFileSync(join(tree, 'f.txt'), 'main and task\n');
    expect(await begin()).toBe(false);
    expect(readFileSync(join(tree, 'f.txt'), 'utf8')).toBe('main and task\n');
    await commitAll(tree, 'iteration 1');
    expect(await begin()).toBe(false);
    // Lost and made anew from a branch still at the base: the merge starts again.
    await execa('git', ['worktree', 'remove', '--force', tree], { cwd: repo });
    await execa('git', ['branch', '-f', 'resolution', baseCommit], { cwd: repo });
    await execa('git', ['worktree', 'add', '-q', tree, 'resolution'], { cwd: repo });
    expect(await begin()).toBe(true);
    expect(await gitOut(tree, 'diff', '--name-only', '--diff-filter=U')).toBe('f.txt');
  });
});

describe('DecisionEngine: conflictMarkersLeft', () => {
  const quality = (checks: QualityReport['checks']): QualityReport => ({ score: 0.9, breakdown: {}, checks, warnings: [], notes: [] });
  const gate = { ...check(CONFLICT_GATE_CHECK, 1, 'conflict markers (<<<<<<<, =======, >>>>>>>) are left in a.txt (line 2)'), paths: ['a.txt'] };
  const decide = (claimsDone: boolean, checks: QualityReport['checks']) =>
    new DecisionEngine().decide({ task: task({ workdir: '/w' }), index: 1, validation: verdict({ claimsDone, status: claimsDone ? 'DONE' : 'CONTINUE' }), quality: quality(checks), confidence: { score: 0.8, explanation: [] }, history: [] });

  it('a resolution that says done with markers left waits for a human, the files in the question', () => {
    expect(decide(true, [check('npm test', 0), gate])).toEqual({
      decision: 'escalate',
      rule: 'conflictMarkersLeft',
      reason: 'the resolution says it is done, but conflict markers (<<<<<<<, =======, >>>>>>>) are left in a.txt (line 2) — it can be done only without them: answer with how to resolve a.txt (`obra answer <runId> "..."`), or edit them in /w yourself and answer "go on"',
      feedback: 'Conflict markers are still in a.txt. conflict markers (<<<<<<<, =======, >>>>>>>) are left in a.txt (line 2). Resolve every conflict: leave no line of <<<<<<<, ======= or >>>>>>> in any file.',
    });
  });

  it('one still at work goes on; one without markers is judged as any task', () => {
    expect(decide(false, [gate])).toMatchObject({ decision: 'proceed', rule: 'progressingWithFailingChecks' });
    expect(decide(true, [check('npm test', 0), check(CONFLICT_GATE_CHECK, 0)])).toMatchObject({ decision: 'done', rule: 'acceptedAsDone' });
    expect(decide(true, [check('npm test', 1), check(CONFLICT_GATE_CHECK, 0)])).toMatchObject({ decision: 'retry', rule: 'checksFailing' });
  });
});
