import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UserError } from '../../src/core/errors.js';
import { runTask } from '../../src/index.js';
import { feedFrames, inspectorFramesFromJournal, replayIntoInspector, type ReplayFrame } from '../../src/inspector/journal-frames.js';
import { RunStore } from '../../src/store/run-store.js';
import { listen, twoIterationRun, valuesOf, type WireMessage } from './helpers.js';

const quiet = () => new Writable({ write: (_chunk, _encoding, done) => done() });

/** Per actor name, in registration order: the state values it went through. */
function timeline(messages: WireMessage[]) {
  return messages.filter((m) => m.type === '@xstate.actor').map((a) => ({ name: a.name, values: valuesOf(messages, a.sessionId) }));
}

describe('replay into the inspector', () => {
  it('a saved run replays with the same actors and the same state sequences the live run streamed', async () => {
    const run = twoIterationRun();
    let live!: ReturnType<typeof listen>;
    const result = await runTask({
      task: 'Add greet(name)',
      workdir: run.dir,
      config: run.config,
      storeDir: run.storeDir,
      agent: run.agent,
      inspect: { port: 0, onListening: async (server) => void (await (live = listen(server.wsUrl)).opened) },
    });
    await live.closed;

    let replayed!: ReturnType<typeof listen>;
    const out = quiet();
    const summary = await replayIntoInspector({
      storeDir: run.storeDir,
      runId: result.runId,
      port: 0,
      speed: 1000,
      hold: false,
      out,
      onListening: async (server) => void (await (replayed = listen(server.wsUrl)).opened),
    });
    await replayed.closed;
    const journal = RunStore.open(run.storeDir).openRun(result.runId).readJournal();
    expect(summary).toEqual({ frames: journal.length, sent: journal.length });

    // Only actors with a machine (task, iteration) are compared: the live run also shows its promise actors.
    const machinesOnly = (list: ReturnType<typeof timeline>) => list.filter((a) => a.name === 'task' || a.name === 'iteration');
    expect(machinesOnly(timeline(replayed.messages))).toEqual(machinesOnly(timeline(live.messages)));
    expect(machinesOnly(timeline(replayed.messages))).toEqual([
      { name: 'task', values: ['running', 'done'] },
      { name: 'iteration', values: [...result.iterations[0]!.states, 'complete'] },
      { name: 'iteration', values: [...result.iterations[1]!.states, 'complete'] },
    ]);

    const actors = replayed.messages.filter((m) => m.type === '@xstate.actor');
    expect(JSON.parse(actors[0]!.definition!).id).toBe('task');
    expect(JSON.parse(actors[1]!.definition!).id).toBe('iteration');
    expect(actors.slice(1).map((a) => a.parentId)).toEqual([actors[0]!.sessionId, actors[0]!.sessionId]);
    for (const m of replayed.messages) expect(m._version).toBe(live.messages[0]!._version);
    // Every journal line's event reaches the actor that moved, the backoff's delayed event among them.
    const events = replayed.messages.filter((m) => m.type === '@xstate.event');
    expect(events.map((e) => e.event!.type)).toEqual(journal.map((j) => j.event.type));
    expect(events.find((e) => e.event!.type === 'xstate.after.backoffDelay.iteration.retryingSessionLock')?.sessionId).toBe(actors[2]!.sessionId);
  });

  it('paces the frames by the run clock divided by --speed, shortening long pauses', async () => {
    const frames: ReplayFrame[] = [0, 400, 1000, 3_600_000].map((at, seq) => ({ at, seq, messages: [] }));
    const waits: number[] = [];
    const sent = await feedFrames(frames, () => {}, { speed: 4, sleep: async (ms) => void waits.push(ms) });
    expect(sent).toBe(4);
    expect(waits).toEqual([100, 150, 5000]);
    const slow: number[] = [];
    await feedFrames(frames.slice(0, 3), () => {}, { speed: 0.5, sleep: async (ms) => void slow.push(ms) });
    expect(slow).toEqual([800, 1200]);
  });

  it('publishes each frame only after its wait', async () => {
    const frames = inspectorFramesFromJournal('r', [
      { seq: 1, at: 1000, actor: 'task', event: { type: 'xstate.init' }, task: 'running', iteration: null, snapshot: { status: 'active', value: 'running', context: { iterations: 0 }, children: {} } },
      { seq: 2, at: 1600, actor: 'task', event: { type: 'obra.stop' }, task: 'done', iteration: null, snapshot: { status: 'done', value: 'done', context: { iterations: 0 }, children: {} } },
    ]);
    const log: string[] = [];
    await feedFrames(frames, (m) => log.push(m.type === '@xstate.snapshot' ? `snapshot ${(m.snapshot as unknown as { value: string }).value}` : m.type), {
      sleep: async (ms) => void log.push(`wait ${ms}`),
    });
    expect(log).toEqual(['@xstate.actor', '@xstate.event', 'snapshot running', 'wait 600', '@xstate.event', 'snapshot done']);
  });

  it('refuses an unknown run and a speed of 0', async () => {
    const run = twoIterationRun();
    RunStore.open(run.storeDir);
    await expect(replayIntoInspector({ storeDir: run.storeDir, runId: 'nope', port: 0, out: quiet() })).rejects.toThrow(`no run "nope" in ${run.storeDir}`);
    await expect(feedFrames([], () => {}, { speed: 0 })).rejects.toBeInstanceOf(UserError);
  });
});
