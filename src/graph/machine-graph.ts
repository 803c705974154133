import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * A plain description of a flat XState machine — its states and every transition, with guards, delays and
 * actions by name — read from the machine object itself (`machine.root`), never from a hand-kept copy. The
 * Studio export (`obra machines --json`), the README's mermaid charts and the viewer's drawing all start here,
 * so none of them can drift from the code.
 */

export type TransitionKind = 'event' | 'done' | 'error' | 'after' | 'always';

export interface GraphState {
  key: string;
  type: 'atomic' | 'final';
  /** The `src` of every actor the state invokes, in order. */
  invokes: { src: string; id: string | null }[];
  entry: ActionDescription[];
  exit: ActionDescription[];
  /** What the state means (`resting`: the engine waits there, for a timer or a person). */
  tags: string[];
}

export interface GraphTransition {
  /** The state the transition leaves; `null` for a machine-level transition, which applies in every state. */
  source: string | null;
  /** `null` for a targetless transition (it only runs actions). */
  target: string | null;
  kind: TransitionKind;
  /** The event as written in a machine config: `SESSION_RELEASED`, or the delay's name for `after`. */
  event: string;
  /** The invoked actor whose completion (done/error) triggers it. */
  invokeSrc: string | null;
  guard: string | null;
  reenter: boolean;
  /** Unguarded, after guarded transitions for the same event: taken when none of those applies. */
  fallback: boolean;
  actions: ActionDescription[];
}

/** An action by name, with its params when it has them (`{ type: 'enterState', params: { state } }`). */
export interface ActionDescription {
  type: string;
  params?: Record<string, unknown>;
}

export interface MachineGraph {
  id: string;
  initial: string;
  states: GraphState[];
  transitions: GraphTransition[];
}

export function describeMachine(machine: AnyStateMachine): MachineGraph {
  const root = machine.root;
  const initial = root.initial?.target[0]?.key;
  if (!initial) throw new Error(`machine "${machine.id}" has no initial state`);
  const states: GraphState[] = [];
  const transitions: GraphTransition[] = [...transitionsOf(root, null)];
  for (const [key, node] of Object.entries(root.states) as [string, AnyStateNode][]) {
    if (Object.keys(node.states).length) {
      throw new Error(`state "${machine.id}.${key}" has child states; only flat machines can be described`);
    }
    states.push({
      key,
      type: node.type === 'final' ? 'final' : 'atomic',
      invokes: node.invoke.map((invoke, i) => ({ src: String(invoke.src), id: invoke.id === autoInvokeId(node, i) ? null : invoke.id })),
      entry: describeActions(node.entry),
      exit: describeActions(node.exit),
      tags: [...node.tags],
    });
    transitions.push(...transitionsOf(node, key));
  }
  return { id: machine.id, initial, states, transitions };
}

/** XState names an invoke without an id `<index>.<state node id>`; such ids are not part of the design. */
function autoInvokeId(node: AnyStateNode, index: number): string {
  return `${index}.${node.id}`;
}

interface TransitionLike {
  target?: readonly AnyStateNode[];
  guard?: unknown;
  reenter?: boolean;
  actions: readonly unknown[];
  eventType: string;
  delay?: string | number;
}

function transitionsOf(node: AnyStateNode, source: string | null): GraphTransition[] {
  const all = [...(node.transitions.values() as Iterable<TransitionLike[]>)].flat();
  const always = (node.always ?? []) as TransitionLike[];
  return [...all, ...always].map((t, i, list) => {
    const { kind, event, invokeSrc } = classify(node, t);
    const target = t.target?.[0];
    const fallback = t.guard === undefined && list.slice(0, i).some((earlier) => earlier.eventType === t.eventType && earlier.guard !== undefined);
    return {
      source,
      target: target ? target.key : null,
      kind,
      event,
      invokeSrc,
      guard: t.guard === undefined ? null : describeGuard(t.guard),
      reenter: Boolean(t.reenter),
      fallback,
      actions: describeActions(t.actions),
    };
  });
}

function classify(node: AnyStateNode, t: TransitionLike): { kind: TransitionKind; event: string; invokeSrc: string | null } {
  const type = t.eventType;
  const invokeFor = (prefix: string) => node.invoke.find((i) => type === `${prefix}${i.id}`)?.src ?? null;
  if (type === '') return { kind: 'always', event: '', invokeSrc: null };
  if (type.startsWith('xstate.done.actor.')) return { kind: 'done', event: 'onDone', invokeSrc: stringOrNull(invokeFor('xstate.done.actor.')) };
  if (type.startsWith('xstate.error.actor.')) return { kind: 'error', event: 'onError', invokeSrc: stringOrNull(invokeFor('xstate.error.actor.')) };
  if (type.startsWith('xstate.after.')) return { kind: 'after', event: String(t.delay ?? type), invokeSrc: null };
  return { kind: 'event', event: type, invokeSrc: null };
}

function stringOrNull(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/** `'sessionBusy'`, `and(['sessionBusy', 'canRetry'])` → `sessionBusy and canRetry`, `not('x')` → `not x`. */
export function describeGuard(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const composite = guard as { name: string; guards?: unknown[] };
    if (Array.isArray(composite.guards)) {
      const parts = composite.guards.map(describeGuard);
      if (composite.name === 'not') return `not ${parts.join(' ')}`;
      return parts.join(` ${composite.name} `);
    }
    return composite.name || 'inline guard';
  }
  if (guard && typeof guard === 'object' && 'type' in guard) return String((guard as { type: unknown }).type);
  return String(guard);
}

/**
 * Actions by name. XState's own bookkeeping for delayed transitions (the raise/cancel of `after` timers) is
 * left out: it is not part of the design, the `after` transition already says it.
 */
export function describeActions(actions: readonly unknown[]): ActionDescription[] {
  const out: ActionDescription[] = [];
  for (const action of actions) {
    if (action === undefined || action === null) continue;
    if (typeof action === 'string') {
      out.push({ type: action });
    } else if (typeof action === 'function') {
      const fn = action as { type?: string; name: string; assignment?: unknown; id?: unknown; sendId?: unknown };
      if (fn.type === 'xstate.raise' || fn.type === 'xstate.cancel') {
        const id = String(fn.id ?? fn.sendId ?? '');
        if (id.startsWith('xstate.after.')) continue;
      }
      if (fn.type === 'xstate.assign') {
        const keys = fn.assignment && typeof fn.assignment === 'object' ? Object.keys(fn.assignment) : [];
        out.push({ type: keys.length ? `assign(${keys.join(', ')})` : 'assign' });
      } else {
        out.push({ type: fn.type ?? (fn.name || 'inline action') });
      }
    } else if (typeof action === 'object' && 'type' in action) {
      const { type, params } = action as { type: unknown; params?: unknown };
      out.push(params && typeof params === 'object' ? { type: String(type), params: params as Record<string, unknown> } : { type: String(type) });
    }
  }
  return out;
}

/** How a transition reads on a chart: its guard when it has one, else what triggers it. */
export function transitionLabel(t: GraphTransition): string {
  const trigger =
    t.kind === 'done' ? 'done'
    : t.kind === 'error' ? 'error'
    : t.kind === 'after' ? `after ${t.event}`
    : t.kind === 'always' ? (t.fallback ? 'otherwise' : 'always')
    : t.event;
  if (t.guard === null) return trigger;
  // Completion and eventless transitions are chosen by their guard; an event's guard is a condition on it.
  return t.kind === 'done' || t.kind === 'always' ? t.guard : `${trigger} [${t.guard}]`;
}

/**
 * One edge per (source, target) pair, with the labels of all its transitions in the order XState tries them.
 * Machine-level transitions are kept apart (`source: null`).
 */
export interface GraphEdge {
  source: string | null;
  target: string;
  labels: string[];
  kinds: TransitionKind[];
}

export function edgesOf(graph: MachineGraph): GraphEdge[] {
  const edges = new Map<string, GraphEdge>();
  for (const t of graph.transitions) {
    if (t.target === null) continue;
    const key = `${t.source ?? '*'}→${t.target}`;
    let edge = edges.get(key);
    if (!edge) {
      edge = { source: t.source, target: t.target, labels: [], kinds: [] };
      edges.set(key, edge);
    }
    const label = transitionLabel(t) + (t.reenter && t.source === t.target && t.kind === 'event' ? ' (re-enter)' : '');
    if (!edge.labels.includes(label)) edge.labels.push(label);
    if (!edge.kinds.includes(t.kind)) edge.kinds.push(t.kind);
  }
  return [...edges.values()];
}
