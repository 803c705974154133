import { describe, expect, it } from 'vitest';
import { createActor, type AnyActorRef } from 'xstate';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { buildMachines } from '../../src/index.js';
import { SnapshotDecoder, SnapshotEncoder } from '../../src/store/snapshot-codec.js';
import { compactEvent, stepOf, TransitionRecorder } from '../../src/engine/recorder.js';

/** Encodes a sequence of (event, snapshot) pairs and decodes it again, line by line, as the journal does. */
function roundTrip(steps: { event: unknown; snapshot: unknown }[], checkpointEvery = 64) {
  const encoder = new SnapshotEncoder(checkpointEvery);
  const decoder = new SnapshotDecoder();
  const lines: string[] = [];
  const decoded = steps.map(({ event, snapshot }) => {
    const step = encoder.encode(event, snapshot);
    const line = `{"event":${step.event},"eventRefs":${step.eventRefs ?? 'null'},"${step.kind}":${step.body},"refs":${step.refs ?? 'null'}}`;
    lines.push(line);
    const parsed = JSON.parse(line) as { event: unknown; eventRefs?: unknown; checkpoint?: unknown; refs?: unknown; patch?: unknown };
    return decoder.apply(parsed.event, parsed);
  });
  return { decoded, lines };
}

/** A real run's steps: the task actor's persisted snapshot after every transition, as the runner sees them. */
async function realRunSteps(iterations: number, answer: (call: number) => string) {
  const config = configSchema.parse({ task: { max_iterations: iterations } });
  const agent = new ScriptedAgent((_request, call) => answer(call));
  const machine = buildMachines({ config, agent, now: () => 1_700_000_000_000, saveIteration: () => {} });
  const steps: { event: unknown; snapshot: unknown; json: string; recorded: string }[] = [];
  let root: AnyActorRef | undefined;
  // The recorder's cheaper persisted snapshot, taken alongside XState's own for comparison.
  const recorder = new TransitionRecorder(null as never, () => 0, () => root, { durability: 'transition' });
  const actor = createActor(machine, {
    input: {
      runId: 'r1',
      task: { text: 'Write the parser '.repeat(20), workdir: '/tmp/w', checks: [], requiredMarkers: [] },
      sessionId: '11111111-2222-4333-8444-555555555555',
      sessionStrategy: 'resume',
      retry: { maxRetries: 3, initialDelayMs: 10, backoff: 1.5, maxDelayMs: 100, jitter: 'none', onExhausted: 'fail' },
      budgets: { maxIterations: iterations, maxCostUsd: null, maxTurns: null, maxWallMs: null },
      historyWindow: 3,
    },
    inspect: (event) => {
      if (!root) return;
      const step = stepOf(event, root);
      if (!step) return;
      const snapshot = root.getPersistedSnapshot();
      steps.push({ event: compactEvent(step.event), snapshot, json: JSON.stringify(snapshot), recorded: JSON.stringify(recorder.persisted(root)) });
    },
  });
  root = actor;
  const done = new Promise<void>((resolve) => actor.subscribe({ complete: () => resolve() }));
  actor.start();
  await done;
  return steps;
}

describe('snapshot codec', () => {
  it('decodes every snapshot of a real run exactly, with lines much smaller than whole snapshots', async () => {
    const steps = await realRunSteps(6, (call) => `Step ${call + 1}: changed the parser and ran its tests.\n${'Details of the work. '.repeat(30)}\nSTATUS: CONTINUE`);
    expect(steps.length).toBeGreaterThan(40);
    const { decoded, lines } = roundTrip(steps);
    decoded.forEach((entry, i) => {
      expect(entry.state).toEqual(JSON.parse(steps[i]!.json));
      expect(JSON.stringify(entry.event)).toBe(JSON.stringify(steps[i]!.event));
    });
    const whole = steps.reduce((sum, s) => sum + s.json.length + JSON.stringify(s.event).length, 0);
    const compact = lines.reduce((sum, l) => sum + l.length, 0);
    expect(compact / whole).toBeLessThan(0.35);
  });

  it("the recorder's persisted snapshot is XState's getPersistedSnapshot(), at every step", async () => {
    const steps = await realRunSteps(4, (call) => `Step ${call + 1}: did it.\nSTATUS: CONTINUE`);
    expect(steps.length).toBeGreaterThan(25);
    for (const step of steps) expect(step.recorded).toBe(step.json);
  });

  it('writes a long value once: the agent output is referenced, not repeated, in later lines', async () => {
    const payload = 'x'.repeat(5000);
    const steps = await realRunSteps(3, (call) => `Step ${call}: ${payload}\nSTATUS: CONTINUE`);
    const { lines } = roundTrip(steps);
    const occurrences = lines.join('\n').split(payload).length - 1;
    // Each answer arrives once, as the agent call's output (its text and the raw stdout holding it); the
    // validation's copy of the text, the scoring and persisting inputs and the iteration record point at it.
    expect(occurrences).toBe(3 * 2);
    expect(lines.filter((line) => line.includes(payload))).toHaveLength(3);
  });

  it('keeps data that looks like a reference as data', () => {
    const tricky = { $r: ['p', 'context'], $lit: 'x', nested: { $r: 'not a ref' } };
    const steps = [
      { event: { type: 'a' }, snapshot: { context: { value: 1 }, data: tricky } },
      { event: { type: 'b', payload: tricky }, snapshot: { context: { value: 2 }, data: tricky, copy: { ...tricky } } },
    ];
    const { decoded } = roundTrip(steps);
    expect(decoded[1]!.state).toEqual(steps[1]!.snapshot);
    expect(decoded[1]!.event).toEqual(steps[1]!.event);
  });

  it('reproduces additions, deletions, replaced arrays and shared values across many random changes', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const long = (n: number) => `text-${n}-`.padEnd(300, '#');
    let state: Record<string, unknown> = { context: { a: 1, list: [long(0)] }, children: {} };
    const steps: { event: unknown; snapshot: unknown }[] = [];
    for (let i = 0; i < 300; i++) {
      const context = { ...(state.context as Record<string, unknown>) };
      const children = { ...(state.children as Record<string, unknown>) };
      const roll = random();
      if (roll < 0.3) context[`k${i % 7}`] = { text: long(i), n: i };
      else if (roll < 0.45) delete context[`k${Math.floor(random() * 7)}`];
      else if (roll < 0.6) context.list = [...(context.list as unknown[]), long(i)].slice(-4);
      else if (roll < 0.75) children[`c${i % 3}`] = { snapshot: { input: context.list, status: 'active' } };
      else if (roll < 0.85) delete children[`c${Math.floor(random() * 3)}`];
      else context.shared = context[`k${Math.floor(random() * 7)}`] ?? null;
      state = { ...state, context, children };
      steps.push({ event: { type: `e${i}`, output: roll < 0.5 ? context.list : undefined }, snapshot: state });
    }
    const { decoded } = roundTrip(steps, 16);
    decoded.forEach((entry, i) => expect(entry.state).toEqual(JSON.parse(JSON.stringify(steps[i]!.snapshot))));
  });
});
