import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { ensureIdentityKey } from '../../src/hosts/restate/identity.js';
import { CLI, FAKE_OPENCODE, obra } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';
import { agentBin, bareRepository, clusterPerSuite, everything, fakeCalls, queueLines, restateAvailable, runOf, sessionOf, startWorker, submit, until, workerReady } from './helpers.js';

const CONTINUE = (n: number) => `Step ${n}: split one more part of the parser; all tests pass.\nSTATUS: CONTINUE`;
const DONE = 'The parser is split and tested; all tests pass.\nSTATUS: DONE';

/**
 * The Restate engine on a real single-node server: `obra worker` processes take tasks submitted with
 * `obra submit --engine restate`, drive them with the engine core, and hand them to each other.
 */
describe.runIf(restateAvailable('test/restate/workers.test.ts'))('Restate: obra worker processes on one node', () => {
  const suite = clusterPerSuite('obra-restate-');

  it('ten tasks on two workers all end; no session ever has two calls at once; an answer, a pause, a resume, a cancel and --after go through', async () => {
    const { cluster, workers } = suite();
    const plain = agentBin(cluster, 'plain', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '300', FAKE_CLAUDE_REPLIES: JSON.stringify([CONTINUE(1), DONE]) });
    const question = 'Which database should I migrate, Postgres or MySQL?';
    const asking = agentBin(cluster, 'asking', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '100', FAKE_CLAUDE_REPLIES: JSON.stringify([question, question, question, DONE]) });
    const slow = agentBin(cluster, 'slow', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '1500', FAKE_CLAUDE_REPLIES: JSON.stringify([...Array.from({ length: 14 }, (_, i) => CONTINUE(i + 1)), DONE]) });

    // Before any worker: submitting says what to do.
    const early = await obra(['submit', '--engine', 'restate', '--task', 'Too early', ...cluster.flags], { cwd: cluster.root });
    expect(early.exitCode).toBe(1);
    expect(early.stderr).toMatch(/not registered with Restate .* start `obra worker`/);

    workers.push(startWorker(cluster, 'w1', ['--concurrency', '3']), startWorker(cluster, 'w2', ['--concurrency', '3']));
    // Both take tasks before any is submitted (a loaded machine may start one much later than the other).
    await Promise.all(workers.map((w) => workerReady(w)));
    const plainIds: string[] = [];
    for (let i = 0; i < 4; i++) plainIds.push(await submit(cluster, `Refactor part ${i}`, plain));
    const askingId = await submit(cluster, 'Migrate the database', asking);
    // Eight iterations of 1.5 s: a pause sent after the first lands well before the last, however loaded the machine.
    const steady = agentBin(cluster, 'steady', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '1500', FAKE_CLAUDE_REPLIES: JSON.stringify(Array.from({ length: 9 }, (_, i) => CONTINUE(i + 1)).concat(DONE)) });
    const pausedId = await submit(cluster, 'A refactoring to pause', steady, ['--set', 'task.max_iterations=20']);
    const slowId = await submit(cluster, 'A long refactoring', slow, ['--set', 'task.max_iterations=20']);
    // One follows a plain task (it starts once that one is done); one follows the task that will be cancelled,
    // and one follows that one (both blocked, in turn).
    const followerId = await submit(cluster, 'Document the split parser', plain, ['--after', plainIds[0]!]);
    const blockedId = await submit(cluster, 'Benchmark the long refactoring', plain, ['--after', slowId]);
    const cascadeId = await submit(cluster, 'Publish the benchmark', plain, ['--after', blockedId]);

    // The task that asks a question waits for a person; the answer goes in through the ingress.
    const waiting = await until('the asking task to escalate', () => runOf(cluster, askingId), (r) => r.status === 'escalated');
    expect(waiting.question).toBeTruthy();
    const answered = await obra(['answer', askingId, 'Postgres; go on.', '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
    expect(answered.exitCode, answered.stderr).toBe(0);

    // One is paused while it runs (after the iteration in flight), then resumed: it goes on where it stopped.
    await until('the task to pause to run', () => runOf(cluster, pausedId), (r) => r.status === 'running' && r.iterations >= 1);
    const paused = await obra(['pause', pausedId, '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
    expect(paused.exitCode, paused.stderr).toBe(0);
    const atRest = await until('the task to be paused', () => runOf(cluster, pausedId), (r) => r.status === 'paused');
    expect(atRest.owner).toBeNull();
    const resumed = await obra(['resume', pausedId, '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/queued again/);

    // The slow one is cancelled while a worker drives it.
    await until('the slow task to run', () => runOf(cluster, slowId), (r) => r.status === 'running' && r.iterations >= 1);
    const cancelled = await obra(['cancel', slowId, '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
    expect(cancelled.exitCode, cancelled.stderr).toBe(0);

    const ids = [...plainIds, askingId, slowId, pausedId, followerId, blockedId, cascadeId];
    const lines = await until('every task to end', () => queueLines(cluster), (ls) => ids.every((id) => ['done', 'cancelled', 'failed', 'max_iterations', 'blocked'].includes(ls.find((l) => l.runId === id)?.status ?? '')), 90_000);
    const statusOf = (id: string) => lines.find((l) => l.runId === id)!.status;
    expect(plainIds.map(statusOf)).toEqual(['done', 'done', 'done', 'done']);
    expect(statusOf(askingId)).toBe('done');
    expect(statusOf(slowId)).toBe('cancelled');
    expect(statusOf(pausedId)).toBe('done');
    expect(statusOf(followerId)).toBe('done');
    expect([statusOf(blockedId), statusOf(cascadeId)]).toEqual(['blocked', 'blocked']);
    expect((await runOf(cluster, blockedId)).reason).toBe(`the run it follows, ${slowId}, ended cancelled`);
    expect((await runOf(cluster, cascadeId)).reason).toBe(`the run it follows, ${blockedId}, ended blocked`);
    const pausedRun = await everything(cluster, pausedId);
    expect(pausedRun.iterations.map((r) => [r.index, r.decision])).toEqual(Array.from({ length: 9 }, (_, i) => [i + 1, 'proceed']).concat([[10, 'done']]));
    expect(pausedRun.run.workers).toHaveLength(2);

    // Both workers drove tasks.
    const drivers = new Set<string>();
    for (const id of ids) for (const w of (await runOf(cluster, id)).workers) drivers.add(w);
    expect([...drivers].sort()).toEqual(['w1', 'w2']);

    // Every plain task did exactly two iterations (proceed, then done), recorded once each.
    for (const id of plainIds) {
      const kept = await everything(cluster, id);
      expect(kept.iterations.map((r) => [r.index, r.decision])).toEqual([[1, 'proceed'], [2, 'done']]);
    }
    // The answer reached the prompt of the asking task's next call.
    const asked = await everything(cluster, askingId);
    expect(asked.iterations.at(-1)!.decision).toBe('done');

    // No session ever had two calls at once, on any worker (from fake-claude's own log).
    const calls = fakeCalls(cluster).filter((c) => sessionOf(c));
    const bySession = new Map<string, typeof calls>();
    for (const call of calls) bySession.set(sessionOf(call)!, [...(bySession.get(sessionOf(call)!) ?? []), call]);
    expect(bySession.size).toBe(8);
    // The follower's first call started after the last call of the task it follows had ended.
    const sessionOfRun = async (id: string) => (await runOf(cluster, id)).sessionId!;
    const followed = bySession.get(await sessionOfRun(plainIds[0]!))!;
    const follower = bySession.get(await sessionOfRun(followerId))!;
    expect(Math.min(...follower.map((c) => c.startedAt))).toBeGreaterThanOrEqual(Math.max(...followed.map((c) => c.at)));
    for (const [, list] of bySession) {
      list.sort((a, b) => a.startedAt - b.startedAt);
      for (let i = 1; i < list.length; i++) expect(list[i]!.startedAt).toBeGreaterThanOrEqual(list[i - 1]!.at);
    }

    // Every task's replay from what Restate stored verifies (the answered and the cancelled ones too).
    for (const id of [plainIds[0]!, askingId, slowId, pausedId, followerId]) {
      const replay = await obra(['replay', id, '--engine', 'restate', '--json', ...cluster.flags], { cwd: cluster.root });
      expect(replay.exitCode, `${id}: ${replay.stdout.slice(0, 1500)}`).toBe(0);
      expect(JSON.parse(replay.stdout)).toMatchObject({ runId: id, verified: true });
    }

    // `obra status --engine restate` shows them.
    const status = await obra(['status', '--engine', 'restate', '--json', ...cluster.flags], { cwd: cluster.root });
    expect(status.exitCode, status.stderr).toBe(0);
    const shown = JSON.parse(status.stdout) as { runId: string; status: string; iteration: number; costUsd: number; agent: string | null; usage: { calls: number; costUsd: number } | null }[];
    expect(ids.every((id) => shown.some((s) => s.runId === id))).toBe(true);
    // Its agent and its tokens and cost summed over its iterations, as on the local engine.
    const firstPlain = shown.find((s) => s.runId === plainIds[0])!;
    expect(firstPlain).toMatchObject({ agent: 'claude', usage: { calls: firstPlain.iteration } });
    expect(firstPlain.usage!.costUsd).toBeCloseTo(firstPlain.costUsd, 9);
    // --watch follows them: a plain line per task when stdout is not a terminal, until Ctrl-C.
    const watching = execa('node', [CLI, 'status', '--engine', 'restate', '--watch', ...cluster.flags], { cwd: cluster.root, reject: false });
    let printed = '';
    watching.stdout!.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    await waitFor(() => ids.every((id) => printed.split('\n').some((line) => line.split(/\s+/)[1] === id)), { timeoutMs: 30_000, what: 'a line per task from --watch' });
    watching.kill('SIGINT');
    const watched = await watching;
    expect(watched.exitCode).toBe(0);
    // (`<time> <runId> <status> ...`: a reason may name another run)
    for (const id of ids) expect(watched.stdout.split('\n').filter((line) => line.split(/\s+/)[1] === id)).toHaveLength(1);
  }, 180_000);
});

describe.runIf(restateAvailable('test/restate/workers.test.ts (failover)'))('Restate: a worker killed mid-call', () => {
  const suite = clusterPerSuite('obra-restate-failover-');

  it('the task goes on on the other worker, in the same session (its transcript restored) and on its branch, nothing lost or done twice', async () => {
    const { cluster, workers } = suite();
    // Each call writes a file of its own (the agent's work): the task's branch must end with all of them.
    const reply = (result: string) => ({ result, files: { 'part-{{turn}}.txt': 'part {{turn}}\n' } });
    const bin = agentBin(cluster, 'steady', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '1500', FAKE_CLAUDE_REPLIES: JSON.stringify([reply(CONTINUE(1)), reply(CONTINUE(2)), reply(CONTINUE(3)), reply(DONE)]) });
    const remote = await bareRepository(cluster.root);
    const lease = ['--set', 'restate.lease_seconds=2'];
    const first = startWorker(cluster, 'first', [...lease, '--work-dir', join(cluster.root, 'work-first')]);
    workers.push(first);
    await until('the first worker to register', () => cluster.client.registeredUri(), (uri) => uri !== null);
    const runId = await submit(cluster, 'Split the parser', bin, ['--set', 'task.max_iterations=8', '--repo-url', remote]);

    // Killed during its second call (the first iteration is recorded, the second call is in flight).
    await until('the first iteration', () => runOf(cluster, runId), (r) => r.iterations >= 1 && r.owner?.worker === 'first');
    // Its second prompt is in the worker's transcript: the call is in flight (it answers 1.5 s after).
    await waitFor(() => promptsIn(join(cluster.root, 'home-first', '.claude')) >= 2, { timeoutMs: 30_000, what: 'the second call to start' });
    const killedAt = Date.now();
    first.kill('SIGKILL');
    await first.catch(() => {});
    const second = startWorker(cluster, 'second', [...lease, '--work-dir', join(cluster.root, 'work-second')]);
    workers.push(second);

    const run = await until('the run to end', () => runOf(cluster, runId), (r) => ['done', 'failed', 'cancelled', 'max_iterations', 'escalated'].includes(r.status), 90_000);
    expect(run.status).toBe('done');
    expect(run.workers).toEqual(['first', 'second']);

    // Every iteration once, in order, each decided once.
    const kept = await everything(cluster, runId);
    expect(kept.iterations.map((r) => [r.index, r.decision])).toEqual([[1, 'proceed'], [2, 'proceed'], [3, 'proceed'], [4, 'done']]);
    // The journal is one sequence: no number twice, none skipped; the takeover is in it.
    const seqs = kept.lines.map((line) => (JSON.parse(line) as { seq: number }).seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(kept.lines.some((line) => line.includes('"obra.resume"'))).toBe(true);

    // The same session throughout: the second worker restored its transcript and resumed it.
    const calls = fakeCalls(cluster).filter((c) => sessionOf(c));
    expect(new Set(calls.map(sessionOf)).size).toBe(1);
    const afterKill = calls.filter((c) => c.startedAt > killedAt);
    expect(afterKill.length).toBeGreaterThan(0);
    expect(afterKill.every((c) => c.argv.includes('--resume'))).toBe(true);
    expect(calls.some((c) => c.outcome === 'no-conversation')).toBe(false);
    const moved = kept.iterations.find((r) => r.agent?.session);
    expect(moved?.agent?.session).toMatchObject({ restored: true });
    expect(moved!.agent!.session!.note).toMatch(/restored on second \(saved by first\)/);

    // Its replay from what Restate stored verifies, across the takeover, like a local run's.
    const replay = await obra(['replay', runId, '--engine', 'restate', '--json', ...cluster.flags], { cwd: cluster.root });
    expect(replay.exitCode, replay.stderr).toBe(0);
    expect(JSON.parse(replay.stdout)).toMatchObject({ runId, verified: true, iterations: 4, segments: 2 });
    const shown = await obra(['show', runId, '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
    expect(shown.stdout).toContain(`Run ${runId}: done`);
    expect(shown.stdout.match(/^Iteration \d+:/gm)).toHaveLength(4);

    // The branch on the remote holds every iteration's commit, whichever worker made it, and all the work.
    const branch = `obra/${runId}`;
    const log = await execa('git', ['-C', remote, 'log', '--format=%s', branch]);
    const iterationsCommitted = log.stdout.split('\n').map((m) => /iteration (\d+)/.exec(m)?.[1]).filter(Boolean);
    expect(iterationsCommitted.reverse()).toEqual(['1', '2', '3', '4']);
    const tree = await execa('git', ['-C', remote, 'ls-tree', '--name-only', branch]);
    expect(tree.stdout.split('\n').filter((f) => f.startsWith('part-')).sort()).toEqual(['part-1.txt', 'part-2.txt', 'part-3.txt', 'part-4.txt']);
    // Each worker's checkout is a worktree of its own copy of the repository (under <work dir>/.repos/).
    for (const name of ['first', 'second']) {
      const common = await execa('git', ['-C', join(cluster.root, `work-${name}`, runId), 'rev-parse', '--path-format=absolute', '--git-common-dir']);
      expect(common.stdout).toMatch(new RegExp(`work-${name}/\\.repos/[0-9a-f]{16}\\.git$`));
    }
    // The agent worked in each worker's own checkout.
    expect(new Set(calls.map((c) => c.cwd))).toEqual(new Set([join(cluster.root, 'work-first', runId), join(cluster.root, 'work-second', runId)]));

    // Never two calls at once on the session; the re-issued call is the only extra one (5 answers for 4 iterations at most).
    calls.sort((a, b) => a.startedAt - b.startedAt);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.startedAt).toBeGreaterThanOrEqual(calls[i - 1]!.at);
    const answered = calls.filter((c) => c.outcome === 'answer');
    expect(answered.length).toBeGreaterThanOrEqual(4);
    expect(answered.length).toBeLessThanOrEqual(5);

    // The session was held by the run's drives (the second took it over from the dead first one), and its settle
    // let it go (one-way, from the task's settle).
    const sessionId = sessionOf(calls[0]!)!;
    await until('the session to be let go', () => cluster.client.session<unknown>(sessionId, 'holder'), (holder) => holder === null, 10_000);
  }, 180_000);

  it('a task that follows another of the same repository starts from where that one ended, unless given a base', async () => {
    const { cluster, workers } = suite();
    const writes = (file: string) => agentBin(cluster, `writes-${file}`, { FAKE_CLAUDE_REPLIES: JSON.stringify([{ result: DONE, files: { [file]: `${file}\n` } }]) });
    const remote = await bareRepository(mkdtempSync(join(cluster.root, 'follow-')));
    const worker = startWorker(cluster, 'follow', ['--work-dir', join(cluster.root, 'work-follow')]);
    workers.push(worker);
    await workerReady(worker);
    const first = await submit(cluster, 'Write a.txt', writes('a.txt'), ['--repo-url', remote]);
    const next = await submit(cluster, 'Write b.txt', writes('b.txt'), ['--repo-url', remote, '--after', first]);
    const apart = await submit(cluster, 'Write c.txt', writes('c.txt'), ['--repo-url', remote, '--after', first, '--base', 'main']);
    for (const id of [first, next, apart]) await until(`${id} to end`, () => runOf(cluster, id), (r) => r.status === 'done', 90_000);
    const rev = async (ref: string) => (await execa('git', ['-C', remote, 'rev-parse', ref])).stdout;
    // One commit each: the follower's on top of the first task's, the other's on main.
    expect(await rev(`obra/${next}~1`)).toBe(await rev(`obra/${first}`));
    expect(await rev(`obra/${apart}~1`)).toBe(await rev('main'));
    const files = async (ref: string) => (await execa('git', ['-C', remote, 'ls-tree', '--name-only', ref])).stdout.split('\n');
    expect(await files(`obra/${next}`)).toEqual(['README.md', 'a.txt', 'b.txt']);
    expect(await files(`obra/${apart}`)).toEqual(['README.md', 'c.txt']);
  }, 120_000);

  // opencode keeps its sessions in SQLite: the conversation moves as opencode's export, imported on the new worker.
  it('opencode: the task goes on on the other worker in the same opencode session, its conversation carried as opencode\'s export', async () => {
    const { cluster, workers } = suite();
    // Only this test's workers: the suite's earlier ones would take the task.
    for (const earlier of workers.splice(0)) {
      earlier.kill('SIGKILL');
      await earlier.catch(() => {});
    }
    const log = join(cluster.root, 'fake-opencode.log');
    // The fake answers with the turn its session is on: a session started afresh, or one that kept a cut turn, shows.
    const bin = join(cluster.root, 'opencode-steady');
    const replies = JSON.stringify([{ text: 'Part {{turn}} done.\nSTATUS: CONTINUE', files: { 'part-{{turn}}.txt': 'part {{turn}}' } }]);
    writeFileSync(bin, `#!/bin/sh\nexport FAKE_OPENCODE_LATENCY_MS=1500 FAKE_OPENCODE_LOG='${log}' FAKE_OPENCODE_REPLIES='${replies}'\nexec ${FAKE_OPENCODE} "$@"\n`, { mode: 0o755 });
    const remote = await bareRepository(mkdtempSync(join(cluster.root, 'opencode-')));
    const lease = ['--set', 'restate.lease_seconds=2'];
    const first = startWorker(cluster, 'oc-first', [...lease, '--work-dir', join(cluster.root, 'work-oc-first')]);
    workers.push(first);
    await workerReady(first);
    const runId = await submit(cluster, 'Split the parser', bin, ['--agent', 'opencode', '--agent-bin', bin, '--set', 'task.max_iterations=4', '--repo-url', remote]);

    // Killed during its second call: the first iteration is recorded, and the second prompt is in opencode's session.
    await until('the first iteration', () => runOf(cluster, runId), (r) => r.iterations >= 1 && r.owner?.worker === 'oc-first');
    const firstSessions = join(cluster.root, 'home-oc-first', '.local/share/opencode/fake-sessions');
    const messages = () => readdirSync(firstSessions).filter((f) => f.endsWith('.json')).reduce((n, f) => n + (JSON.parse(readFileSync(join(firstSessions, f), 'utf8')) as { messages: unknown[] }).messages.length, 0);
    await waitFor(() => messages() >= 3, { timeoutMs: 30_000, what: 'the second call to start' });
    first.kill('SIGKILL');
    await first.catch(() => {});
    const second = startWorker(cluster, 'oc-second', [...lease, '--work-dir', join(cluster.root, 'work-oc-second')]);
    workers.push(second);

    const run = await until('the run to end', () => runOf(cluster, runId), (r) => ['done', 'failed', 'cancelled', 'max_iterations', 'escalated'].includes(r.status), 90_000);
    expect(run.status).toBe('max_iterations');
    expect(run.workers).toEqual(['oc-first', 'oc-second']);
    const kept = await everything(cluster, runId);
    // One session throughout, each turn once: the second worker resumed the first's conversation.
    const answers = kept.iterations.map((r) => (r.agent?.outcome.kind === 'answer' ? r.agent.outcome.result.result : r.agent?.outcome.kind));
    expect(answers).toEqual([1, 2, 3, 4].map((n) => `Part ${n} done.\nSTATUS: CONTINUE`));
    expect(new Set(kept.iterations.map((r) => r.agent?.sessionId)).size).toBe(1);
    expect(kept.iterations[0]!.agent!.sessionId).toMatch(/^ses_/);
    const moved = kept.iterations.find((r) => r.agent?.session);
    expect(moved?.agent?.session?.note).toMatch(/restored on oc-second \(saved by oc-first\)/);
    const calls = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { cwd: string; outcome: string; argv: string[] });
    expect(calls.some((c) => c.outcome === 'unknown-session' || c.outcome === 'other-directory-hang')).toBe(false);
    expect(calls.filter((c) => c.cwd.startsWith(join(cluster.root, 'work-oc-second'))).every((c) => c.argv.includes('-s'))).toBe(true);
    const tree = await execa('git', ['-C', remote, 'ls-tree', '--name-only', `obra/${runId}`]);
    expect(tree.stdout.split('\n').filter((f) => f.startsWith('part-')).sort()).toEqual(['part-1.txt', 'part-2.txt', 'part-3.txt', 'part-4.txt']);
  }, 180_000);
});

/** A bare repository with one commit on main: the "remote" the workers clone (a path: no network). */
describe.runIf(restateAvailable('test/restate/workers.test.ts (registration)'))('Restate: the worker registered last dies', () => {
  const suite = clusterPerSuite('obra-restate-registration-');

  it('another worker registers itself again, and its task goes on to the end on it', async () => {
    const { cluster, workers } = suite();
    const bin = agentBin(cluster, 'steady', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '1000', FAKE_CLAUDE_REPLIES: JSON.stringify([CONTINUE(1), CONTINUE(2), CONTINUE(3), DONE]) });
    const first = startWorker(cluster, 'first');
    workers.push(first);
    const firstUri = await until('the first worker to register', () => cluster.client.registeredUri(), (uri) => uri !== null);
    const runId = await submit(cluster, 'Split the parser', bin);
    await until('the first worker to drive it', () => runOf(cluster, runId), (r) => r.owner?.worker === 'first');

    // A second worker registers (Restate now sends every call to it), and dies.
    const second = startWorker(cluster, 'second');
    workers.push(second);
    await until('the second worker to register', () => cluster.client.registeredUri(), (uri) => uri !== firstUri);
    second.kill('SIGKILL');

    const run = await until('the run to end', () => runOf(cluster, runId), (r) => r.status === 'done', 60_000);
    expect(run.workers).toEqual(['first']);
    expect(run.iterations).toBe(4);
    expect((await cluster.client.registeredUri())?.replace(/\/$/, '')).toBe(firstUri!.replace(/\/$/, ''));

    // A worker that expects another server's signature cannot register: Restate's calls are refused, and it says why.
    const otherKey = ensureIdentityKey(join(cluster.root, 'other-identity.pem'));
    const wrong = await execa('node', [CLI, 'worker', '--name', 'wrong', ...cluster.flags, '--set', `restate.identity_keys=[${otherKey}]`], { cwd: cluster.root, reject: false, timeout: 60_000 });
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toContain(`accepts only calls signed with ${otherKey}`);
  }, 120_000);
});

describe.runIf(restateAvailable('test/restate/workers.test.ts (usage limit)'))('Restate: a usage limit parks the task on a Restate timer', () => {
  const suite = clusterPerSuite('obra-restate-park-');

  it('no worker holds it while it waits; the timer queues it again at the reset, and it goes on in the same session', async () => {
    const { cluster, workers } = suite();
    // A subscriber's five-hour limit on the first call (resetting in 3 s), then the answer. The reply counter is
    // shared by the workers (one state folder), as the account is.
    const bin = agentBin(cluster, 'limited', {
      CLAUDE_CODE_OAUTH_TOKEN: 'dummy',
      FAKE_CLAUDE_STATE_DIR: join(cluster.root, 'fake-state'),
      FAKE_CLAUDE_REPLIES: JSON.stringify([{ usage_limit: { type: 'five_hour', resets_in_s: 3 } }, DONE]),
    });
    workers.push(startWorker(cluster, 'w1', ['--park-after', '1']), startWorker(cluster, 'w2', ['--park-after', '1']));
    await until('a worker to register', () => cluster.client.registeredUri(), (uri) => uri !== null);
    const runId = await submit(cluster, 'Split the parser', bin, ['--set', 'agent.local.usage_limit_margin=1']);

    const parked = await until('the task to be parked', () => runOf(cluster, runId), (r) => Boolean(r.wakeAt));
    expect(parked).toMatchObject({ status: 'queued', owner: null });
    expect(parked.reason).toMatch(/^parked until .*usage limit has reset/);
    const wakeAt = parked.wakeAt!;

    const run = await until('the run to end', () => runOf(cluster, runId), (r) => r.status === 'done', 60_000);
    expect(run.workers).toHaveLength(2);
    expect(run.wakeAt ?? null).toBeNull();
    const calls = fakeCalls(cluster).filter((c) => sessionOf(c)).sort((a, b) => a.startedAt - b.startedAt);
    expect(calls.length).toBe(2);
    expect(calls[1]!.startedAt).toBeGreaterThanOrEqual(wakeAt - 50);
    expect(new Set(calls.map(sessionOf)).size).toBe(1);
    const kept = await everything(cluster, runId);
    expect(kept.iterations.map((r) => r.decision)).toEqual(['done']);
    const replay = await obra(['replay', runId, '--engine', 'restate', '--json', ...cluster.flags], { cwd: cluster.root });
    expect(JSON.parse(replay.stdout)).toMatchObject({ verified: true });
  }, 120_000);
});

/** How many prompts the transcripts under a CLI config folder hold (a call writes its prompt before it answers). */
function promptsIn(configDir: string): number {
  const projects = join(configDir, 'projects');
  if (!existsSync(projects)) return 0;
  return readdirSync(projects, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.jsonl'))
    .reduce((n, file) => n + readFileSync(join(projects, file), 'utf8').split('\n').filter((line) => line.includes('"type":"user"')).length, 0);
}
