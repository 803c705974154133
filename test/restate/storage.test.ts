import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIngressMeter, type IngressMeter } from '../../bench/restate/ingress-meter.js';
import type { AgentCallRequest } from '../../src/agents/agent.js';
import { transcriptPath } from '../../src/agents/claude-code-agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { QUEUE_OBJECT, QUEUE_SHARDS, type QueueLine, type RunTranscript } from '../../src/hosts/restate/model.js';
import { newRunId } from '../../src/hosts/files/local.js';
import { submitToRestate } from '../../src/hosts/restate/submit.js';
import { startRestateWorker, type RestateWorker } from '../../src/hosts/restate/worker.js';
import { clusterPerSuite, queueLines, restateAvailable, runOf, until } from './helpers.js';

/**
 * What a worker sends to Restate and how often (an in-process worker behind a proxy that meters its ingress
 * requests), and which transcript a worker that takes a task back resumes on.
 */
const available = restateAvailable('Restate storage');
const suite = available ? describe : describe.skip;

suite('Restate storage: bounded writes, no polling, the transcript that matches the journal', () => {
  const setup = clusterPerSuite('obra-restate-storage-');
  let meter: IngressMeter;
  let worker: RestateWorker;
  const stop = new AbortController();
  /** What the agent saw of its transcript at each call, by run; a gate a call can wait on. */
  const seen = new Map<string, string[]>();
  const gates = new Map<string, Promise<void>>();
  const home = () => join(setup().cluster.root, 'worker-home');

  /** An agent that writes its turn into the CLI's transcript (`pad` bytes for its first one), as the CLI does. */
  const agent = (pad: number) =>
    new ScriptedAgent((request: AgentCallRequest, call: number) => {
      const path = transcriptPath(request.sessionId!, request.workdir, process.env);
      seen.set(request.runId, [...(seen.get(request.runId) ?? []), readFileOr(path)]);
      mkdirSync(join(path, '..'), { recursive: true });
      const text = call === 0 && pad ? randomBytes(pad).toString('base64').slice(0, pad) : `turn ${call + 1}`;
      appendFileSync(path, `${JSON.stringify({ type: 'assistant', text })}\n`);
      return request.index < 4 ? `Step ${request.index} done; tests pass.\nSTATUS: CONTINUE` : 'All done; tests pass.\nSTATUS: DONE';
    }, { sessionFile: (id, workdir) => transcriptPath(id, workdir, process.env) });

  beforeAll(async () => {
    const { cluster } = setup();
    process.env.CLAUDE_CONFIG_DIR = join(home(), '.claude');
    meter = await startIngressMeter(cluster.server.ingressUrl);
    const pads = new Map<string, number>();
    worker = await startRestateWorker({
      ingressUrl: meter.url,
      adminUrl: cluster.server.adminUrl,
      identityKeys: [cluster.server.identityKey!],
      concurrency: 2,
      signal: stop.signal,
      agent: (run) => {
        const inner = agent(pads.get(run.task.text) ?? 0);
        const gate = gates.get(run.runId);
        return gate ? { name: inner.name, inProcess: true, sessionFile: inner.sessionFile, call: async (r) => (await gate, inner.call(r)) } : inner;
      },
    });
    pads.set('Two kilobytes', 2_000);
    pads.set('Two hundred kilobytes', 200_000);
  });
  afterAll(async () => {
    stop.abort();
    await worker?.done;
    await meter?.close();
  });

  /** Queues a task of 4 iterations (held at its first call until `gate` resolves, when given). */
  const submit = async (task: string, gate?: Promise<void>) => {
    const { cluster } = setup();
    const repo = mkdtempSync(join(cluster.root, 'task-'));
    const runId = newRunId();
    if (gate) gates.set(runId, gate);
    await submitToRestate([{ task, repo, runId }], { ...cluster.server, config: configSchema.parse({ task: { max_iterations: 6 } }) });
    return runId;
  };
  const done = (runId: string) => until(`run ${runId} to end`, () => runOf(setup().cluster, runId), (r) => r.status === 'done', 60_000);

  it('sends an iteration\'s own bytes, not the whole transcript: as many with 200 KB as with 2 KB, and Restate keeps it whole', async () => {
    const { cluster } = setup();
    const small = await submit('Two kilobytes');
    const large = await submit('Two hundred kilobytes');
    await Promise.all([done(small), done(large)]);
    /** The largest request about the run after its first iteration was recorded (its first call's turn has gone by). */
    const largestAfterFirst = (runId: string) => {
      const mine = meter.calls.filter((c) => c.path.startsWith(`/ObraTask/${runId}/`));
      const first = mine.findIndex((c) => c.records);
      expect(first).toBeGreaterThan(0);
      return Math.max(...mine.slice(first + 1).map((c) => c.bytes));
    };
    const [smallBytes, largeBytes] = [largestAfterFirst(small), largestAfterFirst(large)];
    // One write an iteration: the append before its agent call, which carries the record of the iteration before
    // (with the lines that led to it and the call's transcript); the drive's first lines go with the first, its
    // last lines and record with the settle.
    const calls = (runId: string, handler: string) => meter.calls.filter((c) => c.path === `/ObraTask/${runId}/${handler}`);
    expect(calls(small, 'saveIteration')).toHaveLength(0);
    expect(calls(small, 'append').map((c) => c.records)).toEqual([false, true, true, true]);
    expect(calls(small, 'settle').map((c) => c.records)).toEqual([true]);
    expect((await runOf(cluster, small)).iterations).toBe(4);
    expect(smallBytes).toBeLessThan(20_000);
    expect(largeBytes).toBeLessThan(smallBytes + 2_000);
    // What Restate keeps is the whole transcript, as the worker has it.
    const kept = (await cluster.client.task<RunTranscript>(large, 'transcript'))!;
    const local = readFileSync(transcriptPath((await runOf(cluster, large)).sessionId!, (await runOf(cluster, large)).task.workdir, process.env));
    expect(gunzipSync(Buffer.from(kept.gzipBase64, 'base64')).equals(local)).toBe(true);
    expect(kept.length).toBe(local.length);
    expect(local.length).toBeGreaterThan(200_000);
  });

  it('an idle worker makes at most one call in 5 s, and a task submitted meanwhile is taken at once', async () => {
    const { cluster } = setup();
    // Let the last task's calls end, then watch.
    await new Promise((r) => setTimeout(r, 1_000));
    const from = Date.now();
    await new Promise((r) => setTimeout(r, 6_000));
    const idle = meter.calls.filter((c) => c.at >= from);
    expect(idle.length, idle.map((c) => c.path).join(', ')).toBeLessThanOrEqual(2);
    const submitted = Date.now();
    const runId = await submit('Two kilobytes');
    await until('the task to be taken', () => runOf(cluster, runId), (r) => r.status !== 'queued', 10_000);
    expect(Date.now() - submitted).toBeLessThan(3_000);
    await done(runId);
  });

  it('a worker claims the task that woke it without a take, and does not ask its queue again when its slots were all taken', async () => {
    const { cluster } = setup();
    const from = meter.calls.length;
    let open = () => {};
    const held = await submit('Two kilobytes', new Promise<void>((resolve) => (open = resolve)));
    await until('the held task to run', () => runOf(cluster, held), (r) => r.status === 'running', 10_000);
    // The second task takes the worker's last slot; when it ends, nothing is left in the queue for the slot.
    const other = await submit('Two kilobytes');
    await done(other);
    open();
    await done(held);
    // Each task's line woke the waiting worker with its id (one claim each), and nothing was left to take after.
    const calls = meter.calls.slice(from).map((c) => c.path.split('/').slice(1, 4));
    expect(calls.filter(([, , handler]) => handler === 'take')).toEqual([]);
    expect(calls.filter(([, , handler]) => handler === 'claim').map(([, runId]) => runId)).toEqual([held, other]);
  });

  it('a worker that takes a task back resumes on Restate\'s copy of the transcript, not on a newer local one', async () => {
    const { cluster } = setup();
    let open = () => {};
    const runId = await submit('Two kilobytes', new Promise<void>((resolve) => (open = resolve)));
    // Paused while its first call runs: it comes to rest after that iteration, its transcript saved in Restate.
    await until('the task to run', () => runOf(cluster, runId), (r) => r.status === 'running', 10_000);
    await cluster.client.task(runId, 'send', { type: 'PAUSE', reason: 'review' });
    await until('the drive to hear the pause', () => runOf(cluster, runId), (r) => r.inbox.length === 0, 10_000);
    gates.delete(runId);
    open();
    const paused = await until('the task to be paused', () => runOf(cluster, runId), (r) => r.status === 'paused', 30_000);
    const path = transcriptPath(paused.sessionId!, paused.task.workdir, process.env);
    const matching = readFileSync(path, 'utf8');
    // The answer of a call the journal does not know of, on this worker only (as after a server outage).
    appendFileSync(path, `${JSON.stringify({ type: 'assistant', text: 'a lost answer' })}\n`);
    await cluster.client.task(runId, 'send', { type: 'RESUMED' });
    await done(runId);
    const calls = seen.get(runId)!;
    expect(calls[1]).toBe(matching);
    expect(calls.join('')).not.toContain('a lost answer');
  });

  it('the queue is split over shards: a run\'s line is in one, a follower in its followed run\'s, and list gives them all', async () => {
    const { cluster } = setup();
    const ids = await submitToRestate(
      [...Array.from({ length: 8 }, (_, i) => ({ task: `Part ${i}`, repo: mkdtempSync(join(cluster.root, 'task-')) })), { task: 'Document the parts', repo: mkdtempSync(join(cluster.root, 'task-')), after: '@1' }],
      { ...cluster.server, config: configSchema.parse({ task: { max_iterations: 6 } }) },
    );
    // The lines reach the queue one-way: every one, a moment after the submit.
    const shards = async () => new Map(await Promise.all(QUEUE_SHARDS.map(async (key) => [key, (await cluster.client.call<QueueLine[]>(QUEUE_OBJECT, key, 'list', { here: true })).map((l) => l.runId)] as const)));
    const byShard = await until('every line in a shard', shards, (map) => ids.every((id) => [...map.values()].some((runs) => runs.includes(id))), 10_000);
    const shardOfRun = (id: string) => [...byShard].find(([, runs]) => runs.includes(id))?.[0];
    expect(new Set(ids.map(shardOfRun)).size).toBeGreaterThan(1);
    expect(shardOfRun(ids[8]!)).toBe(shardOfRun(ids[0]!));
    expect((await queueLines(cluster)).map((l) => l.runId).sort()).toEqual([...byShard.values()].flat().sort());
    for (const id of ids) await done(id);
  });
});

function readFileOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
