import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { submitTask, work } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';
import type { LiveEvent } from '../../src/store/event-log.js';
import { startViewerServer, type ViewerServer } from '../../src/viewer/server.js';
import type { BoardTask } from '../../src/viewer/store-feed.js';
import { waitFor } from '../helpers/wait-for.js';
import { agentsPerRun, config, scratch } from '../queue/helpers.js';
import { openStream } from './helpers.js';

/**
 * The live streams of `obra view`, without a browser: a run's events (what the agent says and does, the checks'
 * output, the decision) reach an open stream as they are written, and a reconnecting page gets only the rest;
 * the board's stream carries a run's new line when its journal changes.
 */

const s = scratch('obra-live-');
const cfg = config({ task: { max_iterations: 2, checks: ['echo checked-output'] } });
let server: ViewerServer;

beforeAll(async () => {
  RunStore.open(s.storeDir);
  server = await startViewerServer({ storeDir: s.storeDir, port: 0 });
});

afterAll(async () => {
  await server?.close();
});

describe('the run stream', () => {
  it('sends the events of the run as the engine writes them, and only the later ones after Last-Event-ID', async () => {
    const { runId } = await submitTask({ task: 'Write notes', repo: s.folder(), config: cfg, storeDir: s.storeDir });
    const stream = await openStream(`${server.url}api/runs/${runId}/events`);
    try {
      await waitFor(() => stream.events.some((e) => e.event === 'ready'), { what: 'the stream to open' });
      expect(stream.events.filter((e) => e.event === 'events')).toEqual([]);
      // The scripted agent reports its text and a Write as a real CLI's stream would.
      const agents = agentsPerRun(() => 'Wrote the notes.\nSTATUS: DONE', { latencyMs: 50 });
      const agentOf = (runId: string) => {
        const agent = agents.agentOf(runId);
        return {
          ...agent,
          call: async (request: Parameters<typeof agent.call>[0]) => {
            request.onProgress?.({ kind: 'text', text: 'Looking at the folder.' });
            request.onProgress?.({ kind: 'tool', name: 'Write', input: { file_path: '/w/notes.md', content: 'x' } });
            return agent.call(request);
          },
        } as typeof agent;
      };
      await work({ storeDir: s.storeDir, config: cfg, concurrency: 1, untilIdle: true, agent: agentOf });
      await waitFor(() => stream.events.some((e) => e.event === 'events' && (e.data as LiveEvent[]).some((l) => l.kind === 'finished')), { what: 'the run to finish on the stream' });
      const live = stream.events.filter((e) => e.event === 'events').flatMap((e) => e.data as LiveEvent[]);
      const kinds = live.map((e) => (e.kind === 'state' ? `${e.actor}:${e.state}` : e.kind));
      expect(kinds.filter((k) => !k.includes(':'))).toEqual(['text', 'tool', 'checks', 'decision', 'finished']);
      expect(kinds).toContain('iteration:awaitingAgent');
      expect(live.find((e) => e.kind === 'text')).toMatchObject({ index: 1, text: 'Looking at the folder.' });
      expect(live.find((e) => e.kind === 'tool')).toMatchObject({ name: 'Write', detail: '/w/notes.md', file: '/w/notes.md' });
      expect(live.find((e) => e.kind === 'checks')).toMatchObject({ checks: [{ command: 'echo checked-output', exitCode: 0, timedOut: false, output: 'checked-output' }] });
      expect(live.find((e) => e.kind === 'decision')).toMatchObject({ index: 1, decision: 'done', rule: 'acceptedAsDone' });
      expect(live.at(-1)).toMatchObject({ kind: 'finished', status: 'done' });
      // Each batch's id is the byte where the next starts: a page that reconnects with it gets nothing twice.
      const batches = stream.events.filter((e) => e.event === 'events');
      const middle = batches[Math.floor(batches.length / 2)]!;
      const again = await openStream(`${server.url}api/runs/${runId}/events`, { 'last-event-id': middle.id! });
      await waitFor(() => again.events.some((e) => e.event === 'ready'), { what: 'the second stream' });
      const rest = again.events.filter((e) => e.event === 'events').flatMap((e) => e.data as LiveEvent[]);
      const after = batches.slice(batches.indexOf(middle) + 1).flatMap((e) => e.data as LiveEvent[]);
      expect(rest).toEqual(after);
      await again.close();
    } finally {
      await stream.close();
    }
  }, 30_000);

  it('refuses a run that is not in the store', async () => {
    const stream = await openStream(`${server.url}api/runs/nope/events`);
    expect(stream.status).toBe(404);
    expect(stream.body).toBe(`no run "nope" in ${s.storeDir} — \`obra runs\` lists the runs there\n`);
  });
});

describe('the board stream', () => {
  it('pushes the line of a run whose files changed: a journal line written by a worker, run.json by hand', async () => {
    const { runId } = await submitTask({ task: 'Queued for the board', repo: s.folder(), config: cfg, storeDir: s.storeDir });
    const stream = await openStream(`${server.url}api/board/events`);
    const lines = (from = 0) => stream.events.slice(from).filter((e) => e.event === 'tasks').flatMap((e) => (e.data as { tasks: BoardTask[] }).tasks.filter((t) => t.runId === runId));
    try {
      await waitFor(() => stream.events.some((e) => e.event === 'ready'), { what: 'the board stream to open' });
      // The journal's line "iteration 1 is waiting for the agent", written by the worker, is on the stream while the agent thinks.
      const agents = agentsPerRun(() => 'Done.\nSTATUS: DONE', { latencyMs: 1500 });
      const working = work({ storeDir: s.storeDir, config: cfg, concurrency: 1, untilIdle: true, agent: agents.agentOf });
      await waitFor(() => lines().some((t) => t.state === 'running / awaitingAgent'), { what: 'the awaitingAgent line', timeoutMs: 5000 });
      expect(lines().find((t) => t.state === 'running / awaitingAgent')).toMatchObject({ status: 'running', column: 'running', actions: ['pause', 'cancel'] });
      await working;
      await waitFor(() => lines().some((t) => t.status === 'done'), { what: 'the done line' });

      const before = stream.events.length;
      const handle = RunStore.open(s.storeDir, { create: false }).openRun(runId);
      handle.update({ reason: 'touched by hand' });
      handle.close();
      await waitFor(() => lines(before).some((t) => t.reason === 'touched by hand'), { what: 'the changed line on the board stream', timeoutMs: 5000 });
      const change = stream.events.slice(before).find((e) => e.event === 'tasks')!.data as { tasks: BoardTask[]; counts: Record<string, number> };
      expect(change.tasks.map((t) => [t.runId, t.status, t.actions])).toEqual([[runId, 'done', []]]);
      expect(change.counts).toEqual({ queued: 0, running: 0, waiting: 0, done: 2, failed: 0 });
    } finally {
      await stream.close();
    }
  }, 30_000);
});
