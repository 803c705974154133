/**
 * bench/landing — the cost of landing many branches (issue 23, item 4):
 *
 * 1. The overlap check after an iteration's commit, on a generated repository of 10,000 files with 20 unmerged
 *    task branches (3 of them touch a file the measured task changes, so real trial merges run every time),
 *    beside the git commit it follows (`git add --all` + `git commit`). Target: ≤ 100 ms.
 * 2. `obra merge --all` of 20 clean branches on that repository: the time per landing with no checks and with
 *    one check (`test -f README.md`: the cost of running a check, not of the check's own work).
 *
 * Medians; this machine is shared, so the milliseconds travel less well than the ratios.
 *
 *   npm run bench:landing        (ITERATIONS=15, FILES=10000, BRANCHES=20)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import { runMergeQueue } from '../../src/queue/merge-queue.js';
import { refreshOverlap } from '../../src/queue/overlap.js';
import { submitTasks } from '../../src/queue/submit.js';
import { RunStore } from '../../src/store/run-store.js';
import type { WorktreeSpace } from '../../src/workspace/worktree.js';

const ITERATIONS = Number(process.env.ITERATIONS ?? 15);
const FILES = Number(process.env.FILES ?? 10_000);
const BRANCHES = Number(process.env.BRANCHES ?? 20);
const OVERLAPPING = 3;

const git = (cwd: string, args: string[], env: Record<string, string> = {}) =>
  execFileSync('git', ['-c', 'user.name=Bench', '-c', 'user.email=bench@localhost', '-c', 'commit.gpgsign=false', ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 }).trim();

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** A repository of FILES files in folders of 100, one commit on main. */
function makeRepo(root: string): string {
  const repo = join(root, 'repo');
  for (let i = 0; i < FILES; i++) {
    const dir = join(repo, `pkg-${String(Math.floor(i / 100)).padStart(3, '0')}`);
    if (i % 100 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `file-${i}.txt`), `file ${i}\n${'line\n'.repeat(20)}`);
  }
  writeFileSync(join(repo, 'README.md'), '# bench\n');
  git(repo, ['init', '-q', '-b', 'main']);
  git(repo, ['add', '.']);
  git(repo, ['commit', '-q', '-m', 'initial']);
  return repo;
}

/** Puts a commit on `branch` that writes `files`, without a worktree (a temporary index). */
function commitOn(repo: string, root: string, branch: string, files: Record<string, string>): void {
  const index = join(root, `index-${branch.replace(/\//g, '-')}`);
  const env = { GIT_INDEX_FILE: index };
  git(repo, ['read-tree', branch], env);
  for (const [path, text] of Object.entries(files)) {
    const blob = execFileSync('git', ['hash-object', '-w', '--stdin'], { cwd: repo, input: text, encoding: 'utf8' }).trim();
    git(repo, ['update-index', '--add', '--cacheinfo', `100644,${blob},${path}`], env);
  }
  const tree = git(repo, ['write-tree'], env);
  const commit = git(repo, ['commit-tree', tree, '-p', branch, '-m', `work on ${branch}`]);
  git(repo, ['update-ref', `refs/heads/${branch}`, commit]);
}

async function tasks(root: string, repo: string, count: number, checks: string[]): Promise<{ store: RunStore; runIds: string[] }> {
  const storeDir = join(root, 'store');
  const runIds = await submitTasks(
    Array.from({ length: count }, (_, i) => ({ task: `Task ${i}`, repo, checks, runId: `t${String(i).padStart(2, '0')}` })),
    { config: configSchema.parse({}), storeDir },
  );
  return { store: RunStore.open(storeDir, { create: false }), runIds };
}

async function overlapCost(): Promise<{ commitMs: number; overlapMs: number; spawnMs: number; trials: string }> {
  const root = mkdtempSync(join(tmpdir(), 'obra-bench-landing-'));
  const repo = makeRepo(root);
  const { store, runIds } = await tasks(root, repo, BRANCHES + 1, []);
  const [subject, ...peers] = runIds as [string, ...string[]];
  // Each peer changes files of its own folder; the first few also change the file the subject works on.
  for (const [i, peer] of peers.entries()) {
    const files: Record<string, string> = {};
    for (let k = 0; k < 5; k++) files[`pkg-${String(i + 10).padStart(3, '0')}/file-${(i + 10) * 100 + k}.txt`] = `peer ${i} was here\n`;
    if (i < OVERLAPPING) files['pkg-000/file-0.txt'] = `peer ${i} rewrote it\n`;
    commitOn(repo, root, `obra/${peer}`, files);
  }
  for (const peer of peers) await refreshOverlap(store, peer, store.peekStatus(peer).file.queue!.workspace as WorktreeSpace);
  const space = store.peekStatus(subject).file.queue!.workspace as WorktreeSpace;
  git(repo, ['worktree', 'add', '-q', space.path, space.branch]);
  const commitMs: number[] = [];
  const overlapMs: number[] = [];
  const spawnMs: number[] = [];
  let record = null;
  for (let n = 1; n <= ITERATIONS; n++) {
    writeFileSync(join(space.path, 'pkg-000/file-0.txt'), `iteration ${n}\n`);
    writeFileSync(join(space.path, `pkg-001/file-${100 + n}.txt`), `iteration ${n}\n`);
    let started = performance.now();
    git(space.path, ['add', '--all']);
    git(space.path, ['commit', '-q', '--no-verify', '-m', `iteration ${n}`]);
    commitMs.push(performance.now() - started);
    started = performance.now();
    record = await refreshOverlap(store, subject, space);
    overlapMs.push(performance.now() - started);
    // The floor on this machine now: one git process that does next to nothing.
    started = performance.now();
    git(repo, ['rev-parse', 'HEAD']);
    spawnMs.push(performance.now() - started);
  }
  const conflicting = record?.others.filter((o) => o.conflicts.length).length ?? 0;
  return { commitMs: median(commitMs), overlapMs: median(overlapMs), spawnMs: median(spawnMs), trials: `${conflicting} of ${record?.others.length ?? 0} branches conflict` };
}

async function landingCost(checks: string[]): Promise<{ perLandingMs: number; totalMs: number }> {
  const root = mkdtempSync(join(tmpdir(), 'obra-bench-landing-'));
  const repo = makeRepo(root);
  const { store, runIds } = await tasks(root, repo, BRANCHES, checks);
  for (const [i, runId] of runIds.entries()) {
    commitOn(repo, root, `obra/${runId}`, { [`pkg-${String(i).padStart(3, '0')}/file-${i * 100}.txt`]: `task ${i}\n`, [`new-${i}.txt`]: `new ${i}\n` });
    const handle = store.openRun(runId);
    handle.update({ status: 'done', finishedAt: new Date().toISOString() });
    handle.close();
  }
  const at: number[] = [];
  const started = performance.now();
  at.push(started);
  const result = await runMergeQueue({ store, runIds: 'all', strategy: 'merge', checkTimeoutMs: 60_000, progress: () => at.push(performance.now()) });
  const totalMs = performance.now() - started;
  if (result.landed.length !== BRANCHES || result.landed.some((l) => l.outcome !== 'landed')) throw new Error('not every branch landed');
  const each = at.slice(1).map((t, i) => t - at[i]!);
  return { perLandingMs: median(each), totalMs };
}

async function main(): Promise<void> {
  const overlap = await overlapCost();
  const bare = await landingCost([]);
  const checked = await landingCost(['test -f README.md']);
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  console.log(`\nbench/landing: ${FILES} files, ${BRANCHES} unmerged branches, ${ITERATIONS} iterations (medians); load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores\n`);
  console.log('| what | median | target |');
  console.log('| --- | --- | --- |');
  console.log(`| git commit of an iteration (add --all + commit) | ${ms(overlap.commitMs)} | — |`);
  console.log(`| one \`git rev-parse HEAD\` (the cost of starting a git here, now) | ${ms(overlap.spawnMs)} | — |`);
  console.log(`| overlap check after it (${overlap.trials}) | ${ms(overlap.overlapMs)} | ≤ 100 ms ${overlap.overlapMs <= 100 ? '(met)' : '(NOT met)'} |`);
  console.log(`| \`obra merge --all\`, ${BRANCHES} clean branches, no checks: per landing | ${ms(bare.perLandingMs)} | — (total ${(bare.totalMs / 1000).toFixed(1)} s) |`);
  console.log(`| the same with one check (\`test -f README.md\`): per landing | ${ms(checked.perLandingMs)} | — (total ${(checked.totalMs / 1000).toFixed(1)} s) |`);
}

await main();
