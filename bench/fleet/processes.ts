/**
 * Part 3, real processes: tasks queued in a small git repository (a branch and a worktree each), driven by a
 * worker through the Claude Code agent as it runs the real CLI — here fixtures/fake-claude, a child process per
 * call that "thinks" for a fixed latency, writes a file of its own in the worktree and answers — N at a time.
 * Nothing in process: the run records the agent's command at submission and the worker starts it from there.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configSchema } from '../../src/config/schema.js';
import { RunStore, submitTasks, work } from '../../src/index.js';
import { median, runIdsFor, TASK_TEXT } from './common.js';

export const FAKE_CLAUDE = fileURLToPath(new URL('../../fixtures/fake-claude', import.meta.url));

export interface ProcessesSize {
  tasks: number;
  iterations: number;
  concurrency: number;
  latencyMs: number;
}

export interface ProcessesRow {
  tasks: number;
  iterations: number;
  concurrency: number;
  submitMs: number;
  workMs: number;
  /** ceil(tasks / concurrency) × iterations × latency: every call back to back, nothing else taking time. */
  idealMs: number;
  /** The worker process's own CPU (children excluded), per iteration. */
  cpuMsPerIteration: number;
  /** Tasks done with exactly the iterations asked for and one commit per iteration on their branch. */
  verified: number;
  /** What the others did. */
  failures: string[];
  /** From the fake CLI's log: its calls, the most in flight at once, the median time a call took (its own view). */
  calls: number;
  maxCallsInFlight: number;
  medianCallMs: number;
  /** Median time between the end of a task's call and the start of its next one (the engine, git, a process start). */
  medianGapMs: number;
}

const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=Bench', '-c', 'user.email=bench@localhost', '-c', 'commit.gpgsign=false', ...args], { cwd, encoding: 'utf8' }).trim();

export async function processesFleet(size: ProcessesSize): Promise<ProcessesRow> {
  const root = mkdtempSync(join(tmpdir(), 'obra-bench-procs-'));
  const repo = join(root, 'repo');
  mkdirSync(repo);
  git(repo, 'init', '--quiet', '--initial-branch=main');
  writeFileSync(join(repo, 'README.md'), '# parser\n');
  git(repo, 'add', '--all');
  git(repo, 'commit', '--quiet', '-m', 'start');

  // The fake CLI's world: its config dir (transcripts, reply counter) and Obra's session locks in the temp folder.
  const home = join(root, 'home');
  mkdirSync(home);
  const log = join(root, 'fake-claude.log');
  // Each session's n-th turn gets the n-th reply, so every task does the same: CONTINUE, ..., DONE, each turn
  // writing a file of its own (so each iteration leaves a commit).
  const replies = Array.from({ length: size.iterations }, (_, i) => ({
    result: i < size.iterations - 1
      ? 'Step {{turn}}: split one more part of the parser out and added its tests; all tests pass.\nSTATUS: CONTINUE'
      : 'Step {{turn}}: the tokenizer and the AST builder are split, the public API is kept and tests are added; all tests pass.\nSTATUS: DONE',
    files: { 'parser/step-{{turn}}.md': 'Step {{turn}} of the parser split.\n' },
  }));
  Object.assign(process.env, {
    HOME: home,
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    OBRA_SESSION_LOCK_DIR: join(root, 'session-locks'),
    FAKE_CLAUDE_LATENCY_MS: String(size.latencyMs),
    FAKE_CLAUDE_REPLY_BY: 'turn',
    FAKE_CLAUDE_REPLIES: JSON.stringify(replies),
    FAKE_CLAUDE_LOG: log,
  });

  const storeDir = join(root, 'store');
  // Agent calls in flight are capped by each run's own config (agent.max_concurrent_calls, else its
  // queue.concurrency, default 4), not by the worker's concurrency: submitted with the same number.
  const config = configSchema.parse({
    agent: { local: { command: FAKE_CLAUDE } },
    task: { max_iterations: size.iterations + 2 },
    queue: { concurrency: size.concurrency },
    logging: { file: false },
  });
  const submitStarted = performance.now();
  const runIds = await submitTasks(runIdsFor(size.tasks).map((runId) => ({ task: TASK_TEXT, repo, runId })), { storeDir, config });
  const submitMs = performance.now() - submitStarted;

  const cpu = process.cpuUsage();
  const started = performance.now();
  // A task the worker could not start is "skipped", with the reason.
  const skipped = new Map<string, string>();
  const result = await work({ storeDir, config, concurrency: size.concurrency, untilIdle: true, onNews: (news) => news.type === 'skipped' && skipped.set(news.runId, news.reason) });
  const workMs = performance.now() - started;
  const used = process.cpuUsage(cpu);

  const store = RunStore.open(storeDir, { create: false });
  const byRun = new Map(result.results.map((r) => [r.runId, r]));
  const failures: string[] = [];
  const verified = runIds.filter((runId) => {
    const r = byRun.get(runId);
    const space = store.peekRun(runId).file.queue?.workspace;
    const commits = space?.kind === 'worktree' ? Number(git(repo, 'rev-list', '--count', `${space.baseCommit}..${space.branch}`)) : 0;
    if (r?.status === 'done' && r.iterations.length === size.iterations && commits === size.iterations) return true;
    const iterations = r?.iterations.map((it) => `${it.decision} (${it.decisionRule})`).join(', ');
    failures.push(`${runId}: ${r ? `${r.status} — ${r.reason}` : `no result from the worker (skipped: ${skipped.get(runId) ?? '?'})`}; iterations: ${iterations ?? '?'}; ${commits} commit(s)`);
    return false;
  }).length;

  // The fake logs one line per call: when its process started and when it ended.
  const entries = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { session: string; startedAt: number; at: number }) : [];
  const edges = entries.flatMap((e) => [[e.startedAt, 1], [e.at, -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let inFlight = 0;
  let maxCallsInFlight = 0;
  for (const [, delta] of edges) maxCallsInFlight = Math.max(maxCallsInFlight, (inFlight += delta));
  const durations = entries.map((e) => e.at - e.startedAt);
  const bySession = new Map<string, { startedAt: number; at: number }[]>();
  for (const e of entries) bySession.set(e.session, [...(bySession.get(e.session) ?? []), e]);
  const gaps = [...bySession.values()].flatMap((calls) => calls.sort((a, b) => a.startedAt - b.startedAt).slice(1).map((call, i) => call.startedAt - calls[i]!.at));
  rmSync(root, { recursive: true, force: true });
  return {
    tasks: size.tasks,
    iterations: size.tasks * size.iterations,
    concurrency: size.concurrency,
    submitMs,
    workMs,
    idealMs: Math.ceil(size.tasks / size.concurrency) * size.iterations * size.latencyMs,
    cpuMsPerIteration: (used.user + used.system) / 1000 / (size.tasks * size.iterations),
    verified,
    failures,
    calls: entries.length,
    maxCallsInFlight,
    medianCallMs: durations.length ? median(durations) : 0,
    medianGapMs: gaps.length ? median(gaps) : 0,
  };
}
