import { describe, expect, it } from 'vitest';
import type { RestateClient } from '../../src/hosts/restate/client.js';
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
