import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait-for.js';
import type { IterationRecord } from '../../src/core/types.js';
import type { RestateClient } from '../../src/hosts/restate/client.js';
import { chunkText, linesOf, recordOf, type PackedRecord } from '../../src/hosts/restate/journal-chunk.js';
import type { Claimed, RemoteRun } from '../../src/hosts/restate/model.js';
import { RestateRun } from '../../src/hosts/restate/restate-run.js';

/** ObraTask as the drive sees it: every call recorded; `append` hands over the events queued for the drive. */
function taskObject() {
  const calls: { handler: string; input: Record<string, unknown> }[] = [];
  const inbox: unknown[] = [];
  const client = {
    urls: { ingressUrl: 'http://127.0.0.1:1', adminUrl: 'http://127.0.0.1:2' },
    async task(_runId: string, handler: string, input: Record<string, unknown>) {
      calls.push({ handler, input });
      const events = inbox.splice(0);
      if (handler === 'saveIteration') return { ok: true, events, fresh: true };
      return { ok: true, events };
    },
  } as unknown as RestateClient;
  return { client, calls, inbox };
}

const claimed = { epoch: 3, run: { runId: 'r1', task: { text: 'x', workdir: '/tmp', checks: [], requiredMarkers: [] } } as unknown as RemoteRun, tail: [], iterations: [], transcript: null } satisfies Claimed;

describe('RestateRun: events from people reach the drive, or go back to the run', () => {
  it('hands an event to the listening drive on a turn of its own, and sends one that comes as it settles back with the settle', async () => {
    const task = taskObject();
    const transcripts = [{ sessionId: 's1', base: null, gzipBase64: 'eA==', mark: { length: 1, sha256: 'x' }, savedAt: 5, savedBy: 'w1' }];
    const run = new RestateRun({ client: task.client, claimed, leaseMs: 15_000, onLeaseLost: () => {}, session: { takeTranscript: () => transcripts.shift() ?? null, heldSession: 's1' } });
    const heard: unknown[] = [];
    const detach = run.control((event) => heard.push(event));
    task.inbox.push({ type: 'PAUSE', reason: 'review' });
    run.journal.add({ at: 1, actor: 'task', event: { type: 'xstate.init' }, task: 'running', iteration: null, snapshot: { status: 'active', value: 'running', context: {} } }, { checkpoint: true });
    await run.journal.commitInBackground();
    expect(heard).toEqual([]); // not inside the call's own answer...
    await new Promise((r) => setImmediate(r));
    expect(heard).toEqual([{ type: 'PAUSE', reason: 'review' }]); // ...but right after it
    // The transcript of the call made before rode on that write.
    expect(task.calls[0]).toMatchObject({ handler: 'append', input: { epoch: 3, lastSeq: 1, checkpoint: true, transcript: { sessionId: 's1' } } });

    // The drive stops listening, then its last lines' answer brings an answer from a person.
    detach();
    task.inbox.push({ type: 'HUMAN_ANSWER', answer: 'Postgres' });
    run.journal.marker(2, { type: 'obra.note' } as never);
    await run.journal.commitInBackground(); // as the drive makes its last lines durable before it settles
    await run.settle({ status: 'escalated', reason: 'a question', question: 'Which one?', sessionId: 's1' });
    const settle = task.calls.find((c) => c.handler === 'settle')!;
    expect(settle.input).toMatchObject({ epoch: 3, status: 'escalated', release: 's1', unheard: [{ type: 'HUMAN_ANSWER', answer: 'Postgres' }] });
    expect(task.calls.map((c) => c.handler)).toEqual(['append', 'append', 'settle']);
  });
});

describe('RestateRun: one write an iteration', () => {
  const record = (index: number) => ({ index, decision: 'proceed', costUsd: 0.5, states: ['building'], checks: [], startedAt: 0, finishedAt: 0, prompt: `prompt ${index}` }) as unknown as IterationRecord;
  const line = (run: RestateRun, index: number, checkpoint = false) =>
    run.journal.add({ at: index, actor: 'iteration', event: { type: `step.${index}` }, task: 'running', iteration: { index, state: 'awaitingAgent' }, snapshot: { status: 'active', value: 'running', context: { index } } }, { checkpoint });

  it('sends a record with the next append or the settle (once), packs each batch against the one before, and says the server\'s time', async () => {
    const task = taskObject();
    const run = new RestateRun({ client: task.client, claimed: { ...claimed, iterations: [record(0)], now: 1_000_000 }, leaseMs: 15_000, onLeaseLost: () => {} });
    line(run, 1, true);
    await run.journal.commitInBackground();
    // The record of an iteration Restate holds already (a restored `persisting`) is not new, and not sent.
    expect(await run.saveIteration(record(0))).toBe(false);
    expect(await run.saveIteration(record(1))).toBe(true);
    expect(task.calls).toHaveLength(1); // nothing sent for the record itself...
    line(run, 2);
    await run.journal.commitInBackground(); // ...it rides on the next append
    expect(await run.saveIteration(record(2))).toBe(true);
    line(run, 3);
    run.journal.commit(false);
    await run.settle({ status: 'done', reason: 'done', question: null, sessionId: null });

    expect(task.calls.map((c) => c.handler)).toEqual(['append', 'append', 'settle']);
    const [first, second, settle] = task.calls.map((c) => c.input) as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    expect(first).toMatchObject({ lastSeq: 1, checkpoint: true });
    expect(Object.keys(first)).toContain('gz'); // a drive's first batch is packed alone
    expect(first.records).toBeUndefined();
    expect(second).toMatchObject({ lastSeq: 2, checkpoint: false, records: [{ index: 1, costUsd: 0.5 }] });
    expect(Object.keys(second)).toContain('z'); // the next, against the one before
    expect(settle).toMatchObject({ status: 'done', lastSeq: 3, records: [{ index: 2, costUsd: 0.5 }] });
    // Unpacked in order, each against the one before, they are the lines written.
    const lines = linesOf({ gz: first.gz as string }, null);
    const secondLines = linesOf({ z: second.z as string }, chunkText(lines));
    expect(linesOf({ z: settle.z as string }, chunkText(secondLines)).map((l) => JSON.parse(l).seq)).toEqual([3]);
    const [one, two] = [(second.records as PackedRecord[])[0]!, (settle.records as PackedRecord[])[0]!];
    expect(recordOf(two, recordOf(one, record(0)))).toEqual(record(2));
    // The server's time, from the claim's answer on this process's clock (no handler reads its own).
    for (const input of [first, second, settle]) expect(input.at as number).toBeGreaterThanOrEqual(1_000_000);
    expect(settle.at as number).toBeLessThan(1_000_000 + 10_000);
  });

  it('sends a record at once when its drive has not heard from Restate for half a heartbeat (a cancel sent during a call reaches the machine)', async () => {
    const task = taskObject();
    // A 300 ms lease: a heartbeat every 100 ms; a record waits for the next write only within 50 ms of the last.
    const run = new RestateRun({ client: task.client, claimed, leaseMs: 300, onLeaseLost: () => {} });
    const heard: unknown[] = [];
    run.control((event) => heard.push(event));
    line(run, 1, true);
    await run.journal.commitInBackground();
    expect(await run.saveIteration(record(1))).toBe(true);
    expect(task.calls).toHaveLength(1); // heard from just now: it rides on the next write
    await new Promise((r) => setTimeout(r, 60)); // the agent's call
    task.inbox.push({ type: 'CANCEL', reason: 'stop' });
    line(run, 2);
    run.journal.commit(false);
    expect(await run.saveIteration(record(2))).toBe(true);
    expect(task.calls.map((c) => c.handler)).toEqual(['append', 'append']);
    expect(task.calls[1]!.input).toMatchObject({ lastSeq: 2, records: [{ index: 1 }, { index: 2 }] });
    await waitFor(() => heard.length > 0, { what: 'the cancel to reach the drive' });
    expect(heard).toEqual([{ type: 'CANCEL', reason: 'stop' }]);
  });

  it('packs a batch alone every fourth checkpoint, so that a claim unpacks a few iterations at most', async () => {
    const task = taskObject();
    const run = new RestateRun({ client: task.client, claimed, leaseMs: 15_000, onLeaseLost: () => {} });
    for (let i = 1; i <= 12; i++) {
      line(run, i, i % 2 === 1);
      await run.journal.commitInBackground();
    }
    const packing = task.calls.map((c) => ('gz' in c.input ? 'alone' : 'z') + (c.input.checkpoint ? '+c' : ''));
    expect(packing).toEqual(['alone+c', 'z', 'z+c', 'z', 'z+c', 'z', 'z+c', 'z', 'alone+c', 'z', 'z+c', 'z']);
  });
});
