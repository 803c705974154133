import { describe, expect, it } from 'vitest';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { ITERATION_STATES } from '../../src/core/types.js';
import { iterationMachine } from '../../machines/iteration.machine.js';
import { taskMachine } from '../../machines/task.machine.js';

/**
 * Top-level state name → the states its transitions lead to: event transitions, invoke onDone/onError,
 * delayed (`after`) and eventless (`always`) ones, plus the machine-level ones that apply in every state.
 */
function edgesOf(machine: AnyStateMachine): Map<string, Set<string>> {
  const targetsOf = (node: AnyStateNode) =>
    [...[...node.transitions.values()].flat(), ...(node.always ?? [])].flatMap((t) => (t.target ?? [node]).map((n: AnyStateNode) => n.key));
  const global = targetsOf(machine.root);
  return new Map(Object.entries(machine.root.states).map(([key, node]) => [key, new Set([...targetsOf(node as AnyStateNode), ...global])]));
}

function reachableFrom(start: string, edges: Map<string, Set<string>>): Set<string> {
  const seen = new Set([start]);
  const queue = [start];
  while (queue.length) for (const next of edges.get(queue.shift()!) ?? []) if (!seen.has(next)) (seen.add(next), queue.push(next));
  return seen;
}

describe.each([
  ['iteration', iterationMachine, ['complete', 'suspended']],
  ['task', taskMachine, ['done', 'failed', 'maxIterations', 'budgetExceeded', 'cancelled']],
] as const)('%s machine graph', (_name, machine, finals) => {
  const edges = edgesOf(machine);
  const states = [...edges.keys()];

  it('reaches every state from the initial one', () => {
    const initial = (machine.root.initial as unknown as { target: AnyStateNode[] }).target[0]!.key;
    expect(reachableFrom(initial, edges)).toEqual(new Set(states));
  });

  it('has a way to a final state from every state (no dead ends)', () => {
    for (const state of states) {
      const reach = reachableFrom(state, edges);
      expect(finals.some((f) => reach.has(f)), `${state} cannot reach a final state`).toBe(true);
    }
  });

  it('marks exactly the expected states final', () => {
    const finalStates = Object.entries(machine.root.states).filter(([, node]) => node.type === 'final').map(([key]) => key);
    expect(finalStates.sort()).toEqual([...finals].sort());
  });
});

it('the iteration machine has exactly the eight pipeline states, the transient router of call outcomes, and its two final states', () => {
  expect(Object.keys(iterationMachine.root.states)).toEqual([...ITERATION_STATES.slice(0, 3), 'routingOutcome', ...ITERATION_STATES.slice(3), 'complete', 'suspended']);
  for (const [key, node] of Object.entries(iterationMachine.root.states)) expect(node.type, key).toBe(key === 'complete' || key === 'suspended' ? 'final' : 'atomic');
  // The router is transient: it only has eventless transitions, so no snapshot ever rests in it.
  const router = iterationMachine.root.states.routingOutcome!;
  expect(router.always?.length).toBeGreaterThan(5);
  expect([...router.transitions.keys()]).toEqual([]);
});
