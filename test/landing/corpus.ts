import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { configSchema } from '../../src/config/schema.js';
import { refreshOverlap } from '../../src/queue/overlap.js';
import { submitTasks } from '../../src/queue/submit.js';
import { RunStore } from '../../src/store/run-store.js';
import { startFromFollowed, type WorktreeSpace } from '../../src/workspace/worktree.js';

/**
 * The landing corpus: small repositories, each with a pair or trio of done task branches that meet in a known
 * way (the same line, adjacent lines, an edit against a rename or a delete, two additions to one list, a
 * semantic conflict only the checks see, a binary file). Each task is a real queued run of a store, its branch
 * made by commits in its own worktree as a worker would, its overlap worked out after each commit.
 */

export type Content = string | Buffer;

export interface Edit {
  write?: Record<string, Content>;
  remove?: string[];
  rename?: [from: string, to: string][];
}

export interface CorpusTask {
  name: string;
  /** One commit per edit (an iteration each). */
  edits: Edit[];
  priority?: number;
  /** The name of a task of the case it follows. */
  after?: string;
}

export interface CorpusCase {
  name: string;
  files: Record<string, Content>;
  /** Every task's checks (run on each landing). */
  checks: string[];
  tasks: CorpusTask[];
}

export interface BuiltCase {
  root: string;
  repo: string;
  storeDir: string;
  store: RunStore;
  /** Run id by task name. */
  ids: Record<string, string>;
  /** main's tip before any landing. */
  baseTip: string;
}

const GIT_ID = ['-c', 'user.name=Test', '-c', 'user.email=test@localhost', '-c', 'commit.gpgsign=false'];
export const git = async (cwd: string, ...args: string[]) => (await execa('git', [...GIT_ID, ...args], { cwd })).stdout.trim();

function writeAll(dir: string, files: Record<string, Content>): void {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
}

/** Builds the case in a new folder: the repository (main checked out), the store outside it, every task done. */
export async function buildCase(c: CorpusCase, options: { root?: string } = {}): Promise<BuiltCase> {
  const root = options.root ?? mkdtempSync(join(tmpdir(), `obra-landing-${c.name}-`));
  const repo = join(root, 'repo');
  mkdirSync(repo, { recursive: true });
  await git(repo, 'init', '-q', '-b', 'main');
  writeAll(repo, c.files);
  await git(repo, 'add', '.');
  await git(repo, 'commit', '-q', '-m', 'initial');
  const storeDir = join(root, 'store');
  const ids = Object.fromEntries(c.tasks.map((t) => [t.name, `${c.name}-${t.name}`]));
  const index = new Map(c.tasks.map((t, i) => [t.name, i]));
  await submitTasks(
    c.tasks.map((t) => ({ task: `${c.name}: task ${t.name}`, checks: c.checks, repo, priority: t.priority, runId: ids[t.name], after: t.after ? `@${index.get(t.after)! + 1}` : undefined })),
    { config: configSchema.parse({}), storeDir },
  );
  const store = RunStore.open(storeDir, { create: false });
  // In submission order, as workers would: a follower starts where the task it follows ended.
  for (const t of c.tasks) {
    const runId = ids[t.name]!;
    const handle = store.openRun(runId);
    let space = handle.file.queue!.workspace as WorktreeSpace;
    const moved = await startFromFollowed(space);
    if (moved) {
      handle.update({ queue: { ...handle.file.queue!, workspace: moved } });
      space = moved;
    }
    await git(repo, 'worktree', 'add', '-q', space.path, space.branch);
    for (const [n, edit] of t.edits.entries()) {
      writeAll(space.path, edit.write ?? {});
      for (const [from, to] of edit.rename ?? []) await git(space.path, 'mv', from, to);
      for (const path of edit.remove ?? []) rmSync(join(space.path, path));
      await git(space.path, 'add', '--all');
      await git(space.path, 'commit', '-q', '-m', `obra ${runId} iteration ${n + 1}`);
      await refreshOverlap(store, runId, space);
    }
    handle.update({ status: 'done', finishedAt: new Date().toISOString() });
    handle.close();
  }
  return { root, repo, storeDir, store, ids, baseTip: await git(repo, 'rev-parse', 'main') };
}

/** Runs the checks on every commit main's first parents went through since `from`: the base was never red. */
export async function everyBaseCommitGreen(repo: string, from: string, checks: string[]): Promise<{ commit: string; green: boolean }[]> {
  const commits = (await git(repo, 'rev-list', '--first-parent', '--reverse', `${from}..main`)).split('\n').filter(Boolean);
  const out: { commit: string; green: boolean }[] = [];
  for (const commit of commits) {
    const dir = mkdtempSync(join(tmpdir(), 'obra-landing-check-'));
    await execa('sh', ['-c', `git archive ${commit} | tar -x -C "$1"`, 'sh', dir], { cwd: repo });
    let green = true;
    for (const check of checks) if ((await execa('sh', ['-c', check], { cwd: dir, reject: false })).exitCode !== 0) green = false;
    out.push({ commit, green });
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

const LIST = 'apple\nbanana\n';
/** Every line of every uses*.txt names what name.txt says: a rename that misses a new use breaks it. */
const NAMES_AGREE = 'for f in uses*.txt; do while read w; do [ "$w" = "$(cat name.txt)" ] || exit 1; done < "$f"; done';

/** The corpus: each case with what git and the queue are expected to make of it. */
export const CORPUS: (CorpusCase & { expect: { conflicts: Record<string, string[]>; order: string[]; landed: string[]; stopsAt: { task: string; exitCode: number; files?: string[] } | null } })[] = [
  {
    name: 'same-line',
    files: { 'f.txt': 'one\ntwo\nthree\n' },
    checks: ['test -f f.txt'],
    tasks: [
      { name: 'a', edits: [{ write: { 'f.txt': 'ONE-A\ntwo\nthree\n' } }] },
      { name: 'b', edits: [{ write: { 'f.txt': 'ONE-B\ntwo\nthree\n' } }] },
    ],
    expect: { conflicts: { a: ['f.txt'], b: ['f.txt'] }, order: ['a', 'b'], landed: ['a'], stopsAt: { task: 'b', exitCode: 11, files: ['f.txt'] } },
  },
  {
    name: 'adjacent-lines',
    files: { 'f.txt': 'one\ntwo\nthree\nfour\n' },
    checks: ['test -f f.txt'],
    tasks: [
      { name: 'a', edits: [{ write: { 'f.txt': 'one\nTWO\nthree\nfour\n' } }] },
      { name: 'b', edits: [{ write: { 'f.txt': 'one\ntwo\nTHREE\nfour\n' } }] },
    ],
    // git takes changes to adjacent lines as one hunk: a conflict.
    expect: { conflicts: { a: ['f.txt'], b: ['f.txt'] }, order: ['a', 'b'], landed: ['a'], stopsAt: { task: 'b', exitCode: 11, files: ['f.txt'] } },
  },
  {
    name: 'edit-rename',
    files: { 'f.txt': 'one\ntwo\nthree\nfour\nfive\nsix\n' },
    checks: ['test -f g.txt || test -f f.txt'],
    tasks: [
      { name: 'a', edits: [{ write: { 'f.txt': 'one\ntwo\nthree\nfour\nfive\nSIX\n' } }] },
      { name: 'b', edits: [{ rename: [['f.txt', 'g.txt']] }] },
    ],
    // The rename carries the edit: no conflict.
    expect: { conflicts: {}, order: ['a', 'b'], landed: ['a', 'b'], stopsAt: null },
  },
  {
    name: 'edit-delete',
    files: { 'f.txt': 'one\ntwo\n', 'keep.txt': 'k\n' },
    checks: ['test -f keep.txt'],
    tasks: [
      { name: 'a', edits: [{ write: { 'f.txt': 'one\nTWO\n' } }] },
      { name: 'b', edits: [{ remove: ['f.txt'] }] },
    ],
    expect: { conflicts: { a: ['f.txt'], b: ['f.txt'] }, order: ['a', 'b'], landed: ['a'], stopsAt: { task: 'b', exitCode: 11, files: ['f.txt'] } },
  },
  {
    name: 'list-additions',
    files: { 'list.txt': LIST },
    checks: ['grep -q apple list.txt'],
    tasks: [
      { name: 'a', edits: [{ write: { 'list.txt': `${LIST}cherry\n` } }] },
      { name: 'b', edits: [{ write: { 'list.txt': `${LIST}date\n` } }], priority: 1 },
    ],
    // Both add at the end: a conflict; b goes first (priority 1).
    expect: { conflicts: { a: ['list.txt'], b: ['list.txt'] }, order: ['b', 'a'], landed: ['b'], stopsAt: { task: 'a', exitCode: 11, files: ['list.txt'] } },
  },
  {
    name: 'semantic',
    files: { 'name.txt': 'alpha\n', 'uses.txt': 'alpha\n' },
    checks: [NAMES_AGREE],
    tasks: [
      // Renames alpha to beta everywhere it is used today.
      { name: 'a', edits: [{ write: { 'name.txt': 'beta\n', 'uses.txt': 'beta\n' } }] },
      // Adds a use of alpha, in a file of its own: git merges the two cleanly; the checks do not.
      { name: 'b', edits: [{ write: { 'uses-2.txt': 'alpha\n' } }] },
    ],
    expect: { conflicts: {}, order: ['a', 'b'], landed: ['a'], stopsAt: { task: 'b', exitCode: 13 } },
  },
  {
    name: 'binary',
    files: { 'logo.bin': Buffer.from([0, 1, 2, 3, 0, 255, 254]), 'README.md': '# r\n' },
    checks: ['test -f logo.bin'],
    tasks: [
      { name: 'a', edits: [{ write: { 'logo.bin': Buffer.from([0, 9, 9, 9, 0, 255]) } }] },
      { name: 'b', edits: [{ write: { 'logo.bin': Buffer.from([0, 7, 7, 0, 1]) } }] },
      // A third task, first by its priority, that touches neither: it lands before the pair stops the queue.
      { name: 'c', edits: [{ write: { 'notes.txt': 'notes\n' } }], priority: 2 },
    ],
    expect: { conflicts: { a: ['logo.bin'], b: ['logo.bin'] }, order: ['c', 'a', 'b'], landed: ['c', 'a'], stopsAt: { task: 'b', exitCode: 11, files: ['logo.bin'] } },
  },
];

/** Clean branches only: a trio with a chain (c follows a) and priorities, for the order and the strategies. */
export const CLEAN_TRIO: CorpusCase = {
  name: 'trio',
  files: { 'README.md': '# trio\n', 'src/app.txt': 'app\n' },
  checks: ['test -f README.md'],
  tasks: [
    { name: 'a', edits: [{ write: { 'a.txt': 'a1\n' } }, { write: { 'a.txt': 'a2\n' } }] },
    { name: 'b', edits: [{ write: { 'b.txt': 'b\n' } }], priority: 5 },
    { name: 'c', edits: [{ write: { 'c.txt': 'c\n' } }], after: 'a', priority: 9 },
  ],
};
