import type { AnyStateMachine } from 'xstate';
import { iterationMachine } from '../../machines/iteration.machine.js';
import { taskMachine } from '../../machines/task.machine.js';
import { describeMachine, type ActionDescription, type GraphTransition, type MachineGraph } from './machine-graph.js';

/**
 * Obra's machines as plain `createMachine` configs: what Stately Studio imports ("Import from code") and what
 * `obra machines --json` prints. Built from the machine objects, so it is always today's design. Guards and
 * actions appear by name; higher-order guards as text (`sessionBusy and canRetry`).
 */

export const MACHINES: Record<'iteration' | 'task', AnyStateMachine> = {
  iteration: iterationMachine,
  task: taskMachine,
};
export type MachineName = keyof typeof MACHINES;
export const MACHINE_NAMES = Object.keys(MACHINES) as MachineName[];

export function machineGraphs(): Record<MachineName, MachineGraph> {
  return { iteration: describeMachine(MACHINES.iteration), task: describeMachine(MACHINES.task) };
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type TransitionConfig = { [key: string]: Json };

export function machineConfig(graph: MachineGraph): { [key: string]: Json } {
  const states: { [key: string]: Json } = {};
  for (const state of graph.states) {
    const config: { [key: string]: Json } = {};
    if (state.type === 'final') config.type = 'final';
    if (state.tags.length) config.tags = state.tags;
    if (state.entry.length) config.entry = actionsJson(state.entry);
    if (state.exit.length) config.exit = actionsJson(state.exit);
    const own = graph.transitions.filter((t) => t.source === state.key);
    const invokes = state.invokes.map((invoke) => {
      const invokeConfig: { [key: string]: Json } = { src: invoke.src };
      if (invoke.id) invokeConfig.id = invoke.id;
      const onDone = own.filter((t) => t.kind === 'done' && t.invokeSrc === invoke.src);
      const onError = own.filter((t) => t.kind === 'error' && t.invokeSrc === invoke.src);
      if (onDone.length) invokeConfig.onDone = oneOrMany(onDone, false);
      if (onError.length) invokeConfig.onError = oneOrMany(onError, false);
      return invokeConfig;
    });
    if (invokes.length) config.invoke = invokes.length === 1 ? invokes[0]! : invokes;
    const on = byEvent(own.filter((t) => t.kind === 'event'), false);
    if (on) config.on = on;
    const after = byEvent(own.filter((t) => t.kind === 'after'), false);
    if (after) config.after = after;
    const always = own.filter((t) => t.kind === 'always');
    if (always.length) config.always = oneOrMany(always, false);
    states[state.key] = config;
  }
  const machine: { [key: string]: Json } = { id: graph.id, initial: graph.initial };
  const machineLevel = byEvent(graph.transitions.filter((t) => t.source === null && t.kind === 'event'), true);
  if (machineLevel) machine.on = machineLevel;
  machine.states = states;
  return machine;
}

/** `{ iteration: {...}, task: {...} }`, ready for `JSON.stringify`. */
export function machineConfigs(): Record<MachineName, { [key: string]: Json }> {
  const graphs = machineGraphs();
  return { iteration: machineConfig(graphs.iteration), task: machineConfig(graphs.task) };
}

/** The machines as code Stately Studio's "Import from code" accepts (one `createMachine` call each). */
export function studioCode(names: MachineName[] = MACHINE_NAMES): string {
  const configs = machineConfigs();
  const body = names.map((name) => `export const ${name}Machine = createMachine(${JSON.stringify(configs[name], null, 2)});\n`);
  return `import { createMachine } from 'xstate';\n\n${body.join('\n')}`;
}

function byEvent(transitions: GraphTransition[], machineLevel: boolean): { [key: string]: Json } | null {
  if (!transitions.length) return null;
  const groups = new Map<string, GraphTransition[]>();
  for (const t of transitions) groups.set(t.event, [...(groups.get(t.event) ?? []), t]);
  return Object.fromEntries([...groups].map(([event, list]) => [event, oneOrMany(list, machineLevel)]));
}

function oneOrMany(transitions: GraphTransition[], machineLevel: boolean): Json {
  const configs = transitions.map((t) => transitionJson(t, machineLevel));
  return configs.length === 1 ? configs[0]! : configs;
}

function transitionJson(t: GraphTransition, machineLevel: boolean): TransitionConfig {
  const config: TransitionConfig = {};
  // A machine-level transition targets a child state: `.cancelled`.
  if (t.target !== null) config.target = machineLevel ? `.${t.target}` : t.target;
  if (t.guard !== null) config.guard = t.guard;
  if (t.reenter) config.reenter = true;
  if (t.actions.length) config.actions = actionsJson(t.actions);
  return config;
}

function actionsJson(actions: ActionDescription[]): Json {
  return actions.map((a) => (a.params ? { type: a.type, params: a.params as { [key: string]: Json } } : a.type));
}
