import { createServer } from 'node:net';
import { createWebSocketInspector } from '@statelyai/inspect';
import { createActor, createMachine } from 'xstate';
import { describe, expect, it } from 'vitest';
import { startInspectorServer } from '../../src/inspector/server.js';
import { answerRun, runTask } from '../../src/index.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { UserError } from '../../src/core/errors.js';
import { RunStore } from '../../src/store/run-store.js';
import { listen, twoIterationRun, valuesOf, type WireMessage } from './helpers.js';

const PIPELINE = ['building', 'prompting', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting'];

describe('live inspection (runTask({ inspect: { port } }))', () => {
  it('streams the actors, events and snapshots of a run to a WebSocket client of the inspector server', async () => {
    const run = twoIterationRun();
    let client!: ReturnType<typeof listen>;
    let url = '';
    const result = await runTask({
      task: 'Add greet(name)',
      workdir: run.dir,
      config: run.config,
      storeDir: run.storeDir,
      agent: run.agent,
      inspect: {
        port: 0,
        onListening: async (server) => {
          url = server.url;
          client = listen(server.wsUrl);
          await client.opened;
        },
      },
    });
    expect(result.status).toBe('done');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    // The server closes the connection once the run is over, after the last message.
    await client.closed;
    const messages = client.messages;
    for (const m of messages) expect(['@xstate.actor', '@xstate.event', '@xstate.snapshot']).toContain(m.type);

    // Actors: one task machine, and one iteration machine per iteration, registered as its child.
    const actors = messages.filter((m) => m.type === '@xstate.actor');
    const task = actors.filter((a) => a.name === 'task');
    const iterations = actors.filter((a) => a.name === 'iteration');
    expect(task).toHaveLength(1);
    expect(iterations).toHaveLength(2);
    for (const it of iterations) expect(it.parentId).toBe(task[0]!.sessionId);
    // The definition the inspector draws is the machine's own config.
    const definition = JSON.parse(task[0]!.definition!) as { id: string; states: Record<string, unknown> };
    expect(definition.id).toBe('task');
    // (@statelyai/inspect serialises with sorted keys)
    expect(Object.keys(definition.states).sort()).toEqual(['running', 'checkingBudgets', 'waitingForUsageLimit', 'awaitingHuman', 'paused', 'done', 'failed', 'maxIterations', 'budgetExceeded', 'cancelled'].sort());
    expect(Object.keys((JSON.parse(iterations[0]!.definition!) as { states: object }).states).sort()).toEqual([...PIPELINE, 'routingOutcome', 'retryingSessionLock', 'complete', 'suspended'].sort());

    // Snapshots: the state values each machine went through, in order, match what the run recorded.
    const [first, second] = iterations.map((a) => valuesOf(messages, a.sessionId));
    expect(first).toEqual([...result.iterations[0]!.states, 'complete']);
    expect(second).toEqual([...result.iterations[1]!.states, 'complete']);
    expect(second).toEqual(['building', 'prompting', 'awaitingAgent', 'retryingSessionLock', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting', 'complete']);
    expect(valuesOf(messages, task[0]!.sessionId)).toEqual(['running', 'done']);
    const lastTask = messages.filter((m) => m.type === '@xstate.snapshot' && m.sessionId === task[0]!.sessionId).at(-1)!;
    expect(lastTask.snapshot?.status).toBe('done');
    expect(lastTask.snapshot?.context?.iterations).toBe(2);

    // Events: what each actor received, with the backoff's delayed event on the second iteration.
    const eventsTo = (sessionId: string) => messages.filter((m): m is WireMessage & { event: { type: string } } => m.type === '@xstate.event' && m.sessionId === sessionId).map((m) => m.event.type);
    expect(eventsTo(task[0]!.sessionId)[0]).toBe('xstate.init');
    expect(eventsTo(task[0]!.sessionId).filter((t) => t === 'xstate.done.actor.iteration')).toHaveLength(2);
    expect(eventsTo(iterations[1]!.sessionId)).toContain('xstate.after.backoffDelay.iteration.retryingSessionLock');
    expect(eventsTo(iterations[0]!.sessionId)).not.toContain('xstate.after.backoffDelay.iteration.retryingSessionLock');
  });

  it('refuses a port that is taken with a one-line error naming --port, before a run is created', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const port = (blocker.address() as { port: number }).port;
    const run = twoIterationRun();
    try {
      const error = await runTask({ task: 'Add greet(name)', workdir: run.dir, config: run.config, storeDir: run.storeDir, agent: run.agent, inspect: { port } }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(UserError);
      expect((error as UserError).message).toBe(`port ${port} is already in use, so the inspector cannot start on 127.0.0.1:${port} — pick a free one with --port <n>`);
      expect(RunStore.open(run.storeDir).listRunIds()).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  it("relays what @statelyai/inspect's WebSocket inspector publishes from elsewhere, like its own server does", async () => {
    const server = await startInspectorServer({ port: 0 });
    const page = listen(server.wsUrl);
    await page.opened;
    const publisher = createWebSocketInspector({ url: server.wsUrl });
    const toggle = createActor(createMachine({ id: 'toggle', initial: 'off', states: { off: { on: { FLIP: 'on' } }, on: {} } }), { inspect: publisher.inspect });
    toggle.start();
    toggle.send({ type: 'FLIP' });
    await expect.poll(() => valuesOf(page.messages, page.messages.find((m) => m.name === 'toggle')?.sessionId ?? '')).toEqual(['off', 'on']);
    publisher.stop();
    await server.close();
    await page.closed;
  });

  it('inspects a resumed run too: answerRun restores the waiting task and the inspector sees it finish', async () => {
    const run = twoIterationRun();
    const question = 'Which database should I migrate?';
    const agent = new ScriptedAgent([question, question, question, 'Migrated the users table and ran the migration tests.\nSTATUS: DONE']);
    const waiting = await runTask({ task: 'Migrate the database', workdir: run.dir, config: run.config, storeDir: run.storeDir, agent });
    expect(waiting.status).toBe('escalated');
    let client!: ReturnType<typeof listen>;
    const done = await answerRun(waiting.runId, 'Use the users table', {
      storeDir: run.storeDir,
      agent,
      inspect: { port: 0, onListening: async (server) => void (await (client = listen(server.wsUrl)).opened) },
    });
    await client.closed;
    expect(done.status).toBe('done');
    const task = client.messages.find((m) => m.type === '@xstate.actor' && m.name === 'task')!;
    expect(valuesOf(client.messages, task.sessionId)).toEqual(['awaitingHuman', 'running', 'done']);
    const answer = client.messages.find((m) => m.type === '@xstate.event' && m.event?.type === 'HUMAN_ANSWER');
    expect(answer?.sessionId).toBe(task.sessionId);
    const last = client.messages.filter((m) => m.type === '@xstate.actor' && m.name === 'iteration').at(-1)!;
    expect(valuesOf(client.messages, last.sessionId).at(-1)).toBe('complete');
  });
});
