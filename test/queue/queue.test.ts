import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { readTasksFile, requestPause, resumeRun, submitTask, submitTasks, work, RunStore, type WorkNews } from '../../src/index.js';
import { runningIterationOf } from '../../src/persisted/snapshot.js';
import { waitFor } from '../helpers/wait-for.js';
import { agentsPerRun, config, gitOut, gitRepo, journalSpan, maxOverlap, scratch } from './helpers.js';

const DONE = 'Did what was asked.\nSTATUS: DONE';
const MORE = 'Did a part of it.\nSTATUS: CONTINUE';
/** Each task takes `n` iterations: CONTINUE, …, DONE. */
const iterations = (n: number) => (_runId: string, call: number) => (call + 1 >= n ? DONE : MORE);

function statusOf(storeDir: string, runId: string) {
  return RunStore.open(storeDir, { create: false }).peekRun(runId);
}

describe('the queue', () => {
  it('starts tasks by priority, then by age, and says so', async () => {
    const s = scratch();
    const cfg = config();
    const priorities = [0, 2, 0, 5, 2];
    const ids: string[] = [];
    for (const [i, priority] of priorities.entries()) {
      ids.push((await submitTask({ task: `task ${i}`, repo: s.folder(), priority, config: cfg, storeDir: s.storeDir })).runId);
    }
    for (const id of ids) expect(statusOf(s.storeDir, id).status).toBe('queued');
    const agents = agentsPerRun(iterations(1));
    const started: string[] = [];
    const result = await work({ storeDir: s.storeDir, config: cfg, concurrency: 1, untilIdle: true, agent: agents.agentOf, onNews: (n) => n.type === 'started' && started.push(n.runId) });
    expect(started).toEqual([ids[3], ids[1], ids[4], ids[0], ids[2]]);
    expect(result.results.map((r) => r.runId)).toEqual(started);
    expect(result.worst).toBe('done');
    // One at a time: each task's transitions end before the next one's begin.
    const spans = started.map((id) => journalSpan(s.storeDir, id));
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
  });

  it('starts a task that follows another only once that one is done, and blocks the followers of one that failed', async () => {
    const s = scratch();
    const cfg = config({ task: { max_iterations: 2 } });
    const [first, follower, failing] = await submitTasks(
      [
        { task: 'first', repo: s.folder() },
        { task: 'follows first', repo: s.folder(), after: '@1', priority: 9 },
        { task: 'never finishes', repo: s.folder() },
      ],
      { config: cfg, storeDir: s.storeDir },
    );
    const chained = (await submitTask({ task: 'follows the failing one', repo: s.folder(), after: failing!, config: cfg, storeDir: s.storeDir })).runId;
    const second = (await submitTask({ task: 'follows the follower of the failing one', repo: s.folder(), after: chained, config: cfg, storeDir: s.storeDir })).runId;
    const agents = agentsPerRun((runId, call) => (runId === failing ? MORE : iterations(2)(runId, call)), { latencyMs: 20 });
    const news: WorkNews[] = [];
    const result = await work({ storeDir: s.storeDir, config: cfg, concurrency: 4, untilIdle: true, agent: agents.agentOf, onNews: (n) => news.push(n) });

    expect(statusOf(s.storeDir, first!).status).toBe('done');
    expect(statusOf(s.storeDir, follower!).status).toBe('done');
    // Its priority did not let it start before the run it follows was done.
    expect(journalSpan(s.storeDir, follower!)[0]).toBeGreaterThanOrEqual(journalSpan(s.storeDir, first!)[1]);
    expect(statusOf(s.storeDir, failing!).status).toBe('max_iterations');
    const blocked = statusOf(s.storeDir, chained);
    expect(blocked.status).toBe('blocked');
    expect(blocked.file.reason).toBe(`the run it follows, ${failing}, ended max_iterations`);
    // Blocked is an end: what follows it is blocked too, and none of them ever called the agent.
    expect(statusOf(s.storeDir, second).file.reason).toBe(`the run it follows, ${chained}, ended blocked`);
    expect(agents.calls.filter((c) => c.runId === chained || c.runId === second)).toEqual([]);
    expect(result.blocked.sort()).toEqual([chained, second].sort());
    expect(news.filter((n) => n.type === 'blocked').map((n) => n.runId).sort()).toEqual([chained, second].sort());
    expect(result.worst).toBe('max_iterations');
  });

  it('never has more than N tasks in flight (from the journals), and reaches N', async () => {
    const s = scratch();
    const cfg = config();
    const ids = await submitTasks(Array.from({ length: 9 }, (_, i) => ({ task: `task ${i}`, repo: s.folder() })), { config: cfg, storeDir: s.storeDir });
    const agents = agentsPerRun(iterations(2), { latencyMs: 40 });
    const result = await work({ storeDir: s.storeDir, config: cfg, concurrency: 3, untilIdle: true, agent: agents.agentOf });
    expect(result.results).toHaveLength(9);
    expect(result.results.every((r) => r.status === 'done' && r.iterations.length === 2)).toBe(true);
    expect(maxOverlap(ids.map((id) => journalSpan(s.storeDir, id)))).toBe(3);
  });

  it('caps the agent calls in flight across tasks at agent.max_concurrent_calls', async () => {
    const s = scratch();
    const cfg = config({ agent: { max_concurrent_calls: 2 } });
    await submitTasks(Array.from({ length: 6 }, (_, i) => ({ task: `task ${i}`, repo: s.folder() })), { config: cfg, storeDir: s.storeDir });
    const agents = agentsPerRun(iterations(2), { latencyMs: 60, countsAsApiCall: true });
    const result = await work({ storeDir: s.storeDir, config: cfg, concurrency: 6, untilIdle: true, agent: agents.agentOf });
    expect(result.results.every((r) => r.status === 'done')).toBe(true);
    expect(agents.calls).toHaveLength(12);
    expect(agents.maxInFlight()).toBe(2);
    // An in-process agent calls no API: the cap does not hold it back.
    const free = agentsPerRun(iterations(1), { latencyMs: 60 });
    await submitTasks(Array.from({ length: 4 }, (_, i) => ({ task: `free ${i}`, repo: s.folder() })), { config: cfg, storeDir: s.storeDir });
    await work({ storeDir: s.storeDir, config: cfg, concurrency: 4, untilIdle: true, agent: free.agentOf });
    expect(free.maxInFlight()).toBe(4);
    // Six tasks were in flight all the same: the cap is on calls, not on tasks.
    expect(maxOverlap(result.results.map((r) => journalSpan(s.storeDir, r.runId)))).toBeGreaterThan(2);
  });

  it('two workers on one queue: every task is driven by exactly one of them', async () => {
    const s = scratch();
    const cfg = config();
    const ids = await submitTasks(Array.from({ length: 8 }, (_, i) => ({ task: `task ${i}`, repo: s.folder() })), { config: cfg, storeDir: s.storeDir });
    const agents = agentsPerRun(iterations(2), { latencyMs: 30 });
    const [a, b] = await Promise.all([
      work({ storeDir: s.storeDir, config: cfg, concurrency: 3, untilIdle: true, agent: agents.agentOf, pollMs: 20 }),
      work({ storeDir: s.storeDir, config: cfg, concurrency: 3, untilIdle: true, agent: agents.agentOf, pollMs: 20 }),
    ]);
    const byA = a.results.map((r) => r.runId);
    const byB = b.results.map((r) => r.runId);
    expect([...byA, ...byB].sort()).toEqual([...ids].sort());
    expect(byA.filter((id) => byB.includes(id))).toEqual([]);
    expect(byA.length).toBeGreaterThan(0);
    expect(byB.length).toBeGreaterThan(0);
    // Each task called its agent exactly twice (two iterations), once per iteration: nobody drove it again.
    for (const id of ids) expect(agents.calls.filter((c) => c.runId === id)).toHaveLength(2);
    for (const id of ids) expect(statusOf(s.storeDir, id).status).toBe('done');
  });

  it('refuses bad input with one clear line, and queues nothing', async () => {
    const s = scratch();
    const cfg = config();
    const shared = { config: cfg, storeDir: s.storeDir };
    const known = (await submitTask({ task: 'real', repo: s.folder(), ...shared })).runId;
    await expect(submitTask({ task: 'x', repo: s.folder(), after: 'no-such-run', ...shared })).rejects.toThrow(`--after no-such-run: there is no such run in ${s.storeDir}`);
    await expect(submitTask({ task: '  ', repo: s.folder(), ...shared })).rejects.toThrow('the task is empty');
    await expect(submitTask({ task: 'x', repo: `${s.root}/missing`, ...shared })).rejects.toThrow(`--repo ${s.root}/missing is not a folder`);
    await expect(submitTask({ task: 'x', repo: s.folder(), base: 'main', ...shared })).rejects.toThrow(/--base main needs a git repository, and .* is not in one/);
    await expect(submitTask({ task: 'x', repo: s.folder(), runId: known, ...shared })).rejects.toThrow(`run ${known} already exists`);
    await expect(
      submitTasks(
        [
          { task: 'a', repo: s.folder(), after: '@3' },
          { task: 'b', repo: s.folder(), after: '@1' },
          { task: 'c', repo: s.folder(), after: '@2' },
        ],
        shared,
      ),
    ).rejects.toThrow('the tasks follow each other in a circle (task 1 → task 3 → task 2 → task 1): none of them could ever start');
    // A plain folder an active task works in is not given to another.
    const busy = s.folder('busy');
    const holder = (await submitTask({ task: 'uses busy', repo: busy, ...shared })).runId;
    await expect(submitTask({ task: 'also busy', repo: busy, ...shared })).rejects.toThrow(`${busy} is the working folder of run ${holder}, which is still active — two tasks never share a folder`);
    await expect(submitTasks([{ task: 'one', repo: s.folder('pair') }, { task: 'two', repo: `${s.root}/pair` }], shared)).rejects.toThrow('tasks 1 and 2 would share the folder');
    expect(RunStore.open(s.storeDir).listRunIds().sort()).toEqual([known, holder].sort());
  });

  it("names the file and line of a tasks file's unknown `after:`, not a flag", async () => {
    const s = scratch();
    const shared = { config: config(), storeDir: s.storeDir };
    const known = (await submitTask({ task: 'real', repo: s.folder(), ...shared })).runId;
    const file = join(s.root, 'tasks.yaml');
    s.folder('a');
    s.folder('b');
    s.folder('c');
    writeFileSync(file, ['- task: First', '  repo: a', '  name: first', '- task: Second', '  repo: b', '  after: first', '- task: Third', '  repo: c', '  after: frist', ''].join('\n'));
    await expect(submitTasks(readTasksFile(file), shared)).rejects.toMatchObject({
      message: `${file}:9: task 3: after: "frist" names no task in this file and no run in the store ${s.storeDir} (\`obra runs\` lists them)`,
    });
    // A run of the store is a good `after:`; nothing of the refused batch was queued.
    writeFileSync(file, ['- task: First', '  repo: a', `  after: ${known}`, ''].join('\n'));
    const [first] = await submitTasks(readTasksFile(file), shared);
    expect(RunStore.open(s.storeDir).peekRun(first!).file.queue?.after).toBe(known);
    expect(RunStore.open(s.storeDir).listRunIds()).toHaveLength(2);
  });
});

/**
 * Two tasks: `limited` is refused (429) on its first call and quick (20 ms), then done; `other` takes `iterations`
 * iterations of 80 ms calls. The rate-limit backoff starts at `delaySeconds`.
 */
async function rateLimitedPair(s: ReturnType<typeof scratch>, delaySeconds: number, otherIterations: number) {
  const cfg = config({ agent: { local: { rate_limit_initial_delay: delaySeconds } } });
  const [limited, other] = await submitTasks([{ task: 'hits the rate limit', repo: s.folder() }, { task: 'waits with it', repo: s.folder() }], { config: cfg, storeDir: s.storeDir });
  const agents = agentsPerRun(
    (runId, call) =>
      runId !== limited ? iterations(otherIterations)(runId, call)
      : call === 0 ? { outcome: { kind: 'rateLimited', status: 429, message: 'API Error: Request rejected (429)' } }
      : DONE,
    { latencyMs: (runId) => (runId === limited ? 20 : 80) },
  );
  return { cfg, limited: limited!, other: other!, agents };
}

describe('the account limiter', () => {
  it("makes every task wait out one task's rate limit, as a state of its own that uses up no retry", async () => {
    const s = scratch();
    const { cfg, limited, other, agents } = await rateLimitedPair(s, 0.4, 3);
    const result = await work({ storeDir: s.storeDir, config: cfg, concurrency: 2, untilIdle: true, agent: agents.agentOf });
    expect(result.results.every((r) => r.status === 'done')).toBe(true);

    const refused = agents.calls.find((c) => c.runId === limited)!;
    const otherCalls = agents.calls.filter((c) => c.runId === other);
    expect(otherCalls).toHaveLength(3);
    // The other task's first call was already out; its next one waited for the account's wait to end.
    const handle = RunStore.open(s.storeDir, { create: false }).openRun(other!);
    const waits = handle
      .readJournal()
      .map((e) => runningIterationOf(e.snapshot))
      .filter((it) => it?.state === 'retryingSessionLock')
      .map((it) => it!.context as { wait?: { shared?: boolean; dueAt: number; kind: string }; rateLimitRetries?: number });
    handle.close();
    expect(waits.length).toBeGreaterThan(0);
    expect(waits[0]!.wait).toMatchObject({ kind: 'rateLimited', shared: true });
    expect(waits[0]!.rateLimitRetries).toBe(0);
    const dueAt = waits[0]!.wait!.dueAt;
    expect(dueAt - refused.finishedAt).toBeGreaterThanOrEqual(350);
    expect(dueAt - refused.finishedAt).toBeLessThan(600);
    expect(otherCalls[1]!.startedAt).toBeGreaterThanOrEqual(dueAt);
    // No call of any task went out during the wait.
    expect(agents.calls.filter((c) => c.startedAt > refused.finishedAt && c.startedAt < dueAt)).toEqual([]);
  });
});

describe('submitting a batch', () => {
  it('refuses one run id given twice, and writes none of the batch', async () => {
    const s = scratch();
    const shared = { config: config(), storeDir: s.storeDir };
    await expect(submitTasks([{ task: 'one', repo: s.folder(), runId: 'one' }, { task: 'two', repo: s.folder(), runId: 'two' }, { task: 'again', repo: s.folder(), runId: 'two' }], shared)).rejects.toThrow(
      'task 3: the run id two is given to task 2 too',
    );
    expect(RunStore.open(s.storeDir).listRunIds()).toEqual([]);
    // A thousand generated ids in one go: all distinct.
    const ids = await submitTasks(Array.from({ length: 1000 }, (_, i) => ({ task: `t${i}`, repo: s.folder() })), shared);
    expect(new Set(ids).size).toBe(1000);
  }, 60_000);
});

describe('a worker that waits', () => {
  it('takes tasks submitted after it started, until stopped, and keeps no iteration details in memory', async () => {
    const s = scratch();
    const cfg = config();
    const agents = agentsPerRun(iterations(2));
    const stop = new AbortController();
    const news: WorkNews[] = [];
    const looks = vi.spyOn(RunStore.prototype, 'listRunIds');
    const working = work({ storeDir: s.storeDir, config: cfg, concurrency: 2, agent: agents.agentOf, signal: stop.signal, pollMs: 30, onNews: (n) => news.push(n) });
    // The worker has looked at the empty store (twice: it is waiting, not starting) before the tasks come.
    await waitFor(() => looks.mock.calls.length >= 2, { what: 'the worker to look at the store' }).finally(() => looks.mockRestore());
    const ids = await submitTasks([{ task: 'late one', repo: s.folder() }, { task: 'late two', repo: s.folder() }], { config: cfg, storeDir: s.storeDir });
    await waitFor(() => ids.every((id) => statusOf(s.storeDir, id).status === 'done'), { what: 'the worker to finish the late tasks' });
    stop.abort();
    const result = await working;
    expect(result.results.map((r) => r.runId).sort()).toEqual([...ids].sort());
    expect(result.results.map((r) => [r.status, r.iterations.length])).toEqual([
      ['done', 0],
      ['done', 0],
    ]);
    expect(news.filter((n) => n.type === 'finished')).toHaveLength(2);
  });

  it('reads a resting run file once, not at every look, and still sees it when a person resumes it', async () => {
    const s = scratch();
    const cfg = config();
    const ids = await submitTasks(Array.from({ length: 6 }, (_, i) => ({ task: `resting ${i}`, repo: s.folder() })), { config: cfg, storeDir: s.storeDir });
    const setStatus = (runId: string, status: 'paused' | 'queued') => {
      const handle = RunStore.open(s.storeDir).openRun(runId);
      handle.update({ status, reason: status === 'paused' ? 'paused by a person' : '' });
      handle.close();
    };
    for (const id of ids) setStatus(id, 'paused');
    // A run file changed within the last second is read at every look (see RunStatusCache): let them settle.
    const runFiles = ids.map((id) => join(s.storeDir, 'runs', id, 'run.json'));
    await waitFor(() => runFiles.every((file) => Date.now() - statSync(file).mtimeMs > 1_050), { what: 'the run files to settle' });
    const peeks = vi.spyOn(RunStore.prototype, 'peekStatus');
    const looks = vi.spyOn(RunStore.prototype, 'listRunIds');
    try {
      const agents = agentsPerRun(iterations(1));
      const stop = new AbortController();
      const working = work({ storeDir: s.storeDir, config: cfg, concurrency: 2, agent: agents.agentOf, signal: stop.signal, pollMs: 20 });
      await waitFor(() => looks.mock.calls.length >= 8, { what: 'eight looks at the store' });
      // One read of each run file, however many looks.
      expect(peeks.mock.calls.map(([runId]) => runId).sort()).toEqual([...ids].sort());
      setStatus(ids[2]!, 'queued');
      await waitFor(() => statusOf(s.storeDir, ids[2]!).status === 'done', { what: 'the worker to see the resumed run' });
      stop.abort();
      expect((await working).results.map((r) => r.runId)).toEqual([ids[2]]);
    } finally {
      peeks.mockRestore();
      looks.mockRestore();
    }
  });
});

describe('a run another worker took', () => {
  it('is tried again by a waiting worker once that worker dies and leaves it interrupted', async () => {
    const s = scratch();
    const cfg = config();
    const [runId] = await submitTasks([{ task: 'taken by the other', repo: s.folder() }], { config: cfg, storeDir: s.storeDir });
    // The other worker: it holds the run's lock as this worker tries the run, so this one passes it over.
    const other = RunStore.open(s.storeDir).openRun(runId!);
    other.acquireLock();
    const agents = agentsPerRun(iterations(1));
    const news: WorkNews[] = [];
    const stop = new AbortController();
    const looks = vi.spyOn(RunStore.prototype, 'listRunIds');
    const working = work({ storeDir: s.storeDir, config: cfg, concurrency: 2, agent: agents.agentOf, signal: stop.signal, pollMs: 20, onNews: (n) => news.push(n) });
    try {
      // Several looks at the queue while the other worker holds the run: each passed it over.
      await waitFor(() => looks.mock.calls.length >= 5, { what: 'five looks at the store' }).finally(() => looks.mockRestore());
      expect(news.filter((n) => n.type === 'started')).toEqual([]);
      // It started the run, then died: run.json says running, and nobody holds the lock.
      other.update({ status: 'running' });
      other.releaseLock();
      other.close();
      await waitFor(() => statusOf(s.storeDir, runId!).status === 'done', { what: 'the waiting worker to take the run back' });
      expect(news.filter((n) => n.type === 'started')).toEqual([{ type: 'started', runId, resumed: true }]);
    } finally {
      stop.abort();
      await working;
    }
  });
});

describe('a queued task paused before it started', () => {
  it('is held: no worker starts it (nor one that listed it before the pause), and `resume` drives it', async () => {
    const s = scratch();
    const cfg = config();
    const [held, other] = await submitTasks([{ task: 'hold me', repo: s.folder() }, { task: 'go on', repo: s.folder() }], { config: cfg, storeDir: s.storeDir });
    const paused = await requestPause(held!, { storeDir: s.storeDir, reason: 'not yet' });
    expect(paused).toMatchObject({ status: 'paused', message: `run ${held} is paused before it started; \`obra resume ${held}\` drives it` });
    expect(statusOf(s.storeDir, held!)).toMatchObject({ status: 'paused', file: { reason: 'paused before it started: not yet' } });
    // A worker that read the queue before the pause tries it, and leaves it be.
    const agents = agentsPerRun(iterations(1));
    await expect(resumeRun(held!, { storeDir: s.storeDir, agent: agents.agentOf(held!), drivableOnly: true })).rejects.toMatchObject({ exitCode: 3 });
    const worked = await work({ storeDir: s.storeDir, config: cfg, concurrency: 2, untilIdle: true, agent: agents.agentOf });
    expect(worked.results.map((r) => r.runId)).toEqual([other]);
    expect(statusOf(s.storeDir, held!).status).toBe('paused');
    expect(agents.calls.filter((c) => c.runId === held)).toEqual([]);
    const resumed = await resumeRun(held!, { storeDir: s.storeDir, agent: agents.agentOf(held!) });
    expect([resumed.status, resumed.iterations.length]).toEqual(['done', 1]);
  });
});

describe('the account limiter after a restart', () => {
  it("a task stopped during the account's rate-limit wait waits only what is left of it", async () => {
    const s = scratch();
    const { cfg, limited, other, agents } = await rateLimitedPair(s, 1.6, 2);
    const stop = new AbortController();
    let dueAt = 0;
    const result = await work({
      storeDir: s.storeDir,
      config: cfg,
      concurrency: 2,
      untilIdle: true,
      agent: agents.agentOf,
      signal: stop.signal,
      // Stopped the moment the other task starts the account's wait.
      onEvent: (runId, event) => {
        if (runId === other && event.type === 'retry' && event.kind === 'rateLimited') {
          dueAt = event.dueAt;
          setTimeout(() => stop.abort(), 100);
        }
      },
    });
    expect(dueAt).toBeGreaterThan(0);
    expect(result.results.find((r) => r.runId === other)!.status).toBe('interrupted');
    const stoppedAt = Date.now();
    expect(stoppedAt).toBeLessThan(dueAt);

    // Restarted well into the wait: a whole new wait from here would end ~0.9 s after the wait's end.
    await waitFor(() => Date.now() >= dueAt - 700, { what: 'the last 0.7 s of the wait' });
    const again = agentsPerRun(() => DONE);
    const resumed = await work({ storeDir: s.storeDir, config: cfg, concurrency: 2, untilIdle: true, agent: again.agentOf });
    expect(resumed.results.every((r) => r.status === 'done')).toBe(true);
    const next = again.calls.find((c) => c.runId === other)!;
    // It waited for the wait's end, not for a whole new wait from the restart.
    expect(next.startedAt).toBeGreaterThanOrEqual(dueAt);
    expect(next.startedAt - dueAt).toBeLessThan(500);
  });
});

describe('a task that cannot start', () => {
  it('is said why, left where it was, and keeps `--until-idle` from ending as if all were done', async () => {
    const s = scratch();
    const cfg = config();
    const repo = await gitRepo(`${s.root}/repo`);
    const { runId } = await submitTask({ task: 'its branch goes', repo, config: cfg, storeDir: s.storeDir });
    await gitOut(repo, 'branch', '-D', `obra/${runId}`);
    const news: WorkNews[] = [];
    const result = await work({ storeDir: s.storeDir, config: cfg, untilIdle: true, agent: agentsPerRun(iterations(1)).agentOf, onNews: (n) => news.push(n) });
    expect(news).toEqual([{ type: 'skipped', runId, reason: `the branch obra/${runId} of this task is gone from ${repo} (deleted by hand?) — the task cannot go on; submit it again` }]);
    expect(result.worst).toBe('queued');
    expect(statusOf(s.storeDir, runId).status).toBe('queued');
  });
});
