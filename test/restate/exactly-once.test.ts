import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { obra } from '../helpers/cli.js';
import { agentBin, bareRepository, clusterPerSuite, everything, fakeCalls, restateAvailable, runOf, startWorker, submit, until, workerReady } from './helpers.js';

/**
 * Nothing done twice on Restate: a worker killed at each step of saving an iteration of a moving task — after
 * the answer is in Restate, after the commit, after the push — is followed by another that ends the task with
 * one commit per iteration on the remote branch, all the agent's work in it, one agent call and one prompt per
 * iteration, and a replay that verifies. The kill lands in the window through a git hook (the worker's own git
 * config, as on its machine) that stops the worker's git there until the worker is killed.
 */

const REPLIES = JSON.stringify([
  { result: 'Added the first part.\nSTATUS: CONTINUE', files: { 'part-1.txt': 'one\n' } },
  { result: 'Finished the second part.\nSTATUS: DONE', files: { 'part-2.txt': 'two\n' } },
]);

type Window = 'after the answer, before the commit' | 'after the commit, before the push' | 'after the push, before the record';

/** The hook that stops git in the window (once: it leaves `reached` holding its pid), and its condition. */
function hookFor(window: Window, reached: string): { name: string; script: string } {
  const stop = `echo $$ > '${reached}'; exec sleep 600`;
  if (window === 'after the answer, before the commit') {
    // `git add` of the iteration's commit (not the work saved beside the branch, which has an index of its own).
    return { name: 'post-index-change', script: `case "$GIT_INDEX_FILE" in *work-index) exit 0;; esac\n[ -e '${reached}' ] && exit 0\ngit ls-files --error-unmatch part-1.txt >/dev/null 2>&1 || exit 0\n${stop}` };
  }
  if (window === 'after the commit, before the push') return { name: 'post-commit', script: `[ -e '${reached}' ] && exit 0\n${stop}` };
  // In the remote, once the branch holds the first iteration's commit.
  return {
    name: 'post-receive',
    script: `[ -e '${reached}' ] && exit 0\nwhile read old new ref; do\n  case "$ref" in refs/heads/obra/*) ;; *) continue;; esac\n  git log -1 --format=%B "$new" | grep -qx 'Obra-Iteration: .*/1' && { ${stop}; }\ndone\nexit 0`,
  };
}

describe.runIf(restateAvailable('test/restate/exactly-once.test.ts'))('Restate: exactly once across a worker killed while it saves an iteration', () => {
  const suite = clusterPerSuite('obra-restate-once-');
  const windows: Window[] = ['after the answer, before the commit', 'after the commit, before the push', 'after the push, before the record'];

  windows.forEach((window, n) => {
    it(`${window}: one commit, one call and one prompt per iteration`, { timeout: 120_000 }, async () => {
      const { cluster, workers } = suite();
      const root = join(cluster.root, `window-${n}`);
      mkdirSync(root, { recursive: true });
      const bin = agentBin(cluster, `once-${n}`, { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '200', FAKE_CLAUDE_REPLIES: REPLIES });
      const remote = await bareRepository(root);
      const answersBefore = fakeCalls(cluster).filter((c) => c.outcome === 'answer').length;

      // The first worker's machine stops its git in the window.
      const first = `first-${n}`;
      const hooks = join(root, 'hooks');
      mkdirSync(hooks, { recursive: true });
      const reached = join(root, 'reached');
      const hook = hookFor(window, reached);
      writeFileSync(join(hooks, hook.name), `#!/bin/sh\n${hook.script}\n`);
      chmodSync(join(hooks, hook.name), 0o755);
      mkdirSync(join(cluster.root, `home-${first}`), { recursive: true });
      writeFileSync(join(cluster.root, `home-${first}`, '.gitconfig'), `[core]\n\thooksPath = ${hooks}\n`);
      const lease = ['--set', 'restate.lease_seconds=2'];
      const worker = startWorker(cluster, first, [...lease, '--work-dir', join(root, 'work-first')]);
      workers.push(worker);
      await workerReady(worker);
      const runId = await submit(cluster, 'Write the two parts', bin, ['--repo-url', remote]);
      await until(`the first worker to reach the window ${window}`, async () => existsSync(reached), (yes) => yes, 60_000);
      worker.kill('SIGKILL');
      await worker.catch(() => {});
      process.kill(Number(readFileSync(reached, 'utf8').trim()), 'SIGKILL');

      const second = startWorker(cluster, `second-${n}`, [...lease, '--work-dir', join(root, 'work-second')]);
      workers.push(second);
      const run = await until('the run to end', () => runOf(cluster, runId), (r) => ['done', 'failed', 'cancelled', 'max_iterations', 'escalated'].includes(r.status), 90_000);
      expect(run.status).toBe('done');

      // One commit per iteration on the remote, each naming its own, with all the work.
      const branch = `obra/${runId}`;
      const trailers = await execa('git', ['-C', remote, 'log', '--format=%(trailers:key=Obra-Iteration,valueonly)', `main..${branch}`]);
      expect(trailers.stdout.split('\n').filter(Boolean)).toEqual([`${runId}/2`, `${runId}/1`]);
      const tree = await execa('git', ['-C', remote, 'ls-tree', '--name-only', branch]);
      expect(tree.stdout.split('\n').sort()).toEqual(['README.md', 'part-1.txt', 'part-2.txt']);
      // One call and one prompt per iteration; one record each, matching the journal.
      expect(fakeCalls(cluster).filter((c) => c.outcome === 'answer').length - answersBefore).toBe(2);
      const kept = await everything(cluster, runId);
      expect(kept.iterations.map((r) => [r.index, r.decision])).toEqual([[1, 'proceed'], [2, 'done']]);
      const projects = join(cluster.root, `home-second-${n}`, '.claude', 'projects');
      const [project] = readdirSync(projects);
      const [file] = readdirSync(join(projects, project!)).filter((f) => f.endsWith('.jsonl'));
      const prompts = readFileSync(join(projects, project!, file!), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; message: { content: string } }).filter((e) => e.type === 'user');
      expect(prompts).toHaveLength(2);
      expect(new Set(prompts.map((p) => p.message.content)).size).toBe(2);
      const replay = await obra(['replay', runId, '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
      expect(replay.exitCode, replay.stderr).toBe(0);
      // The next window's worker serves the handlers from then on.
      second.kill('SIGKILL');
      await second.catch(() => {});
    });
  });
});
