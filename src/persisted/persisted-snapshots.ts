import type { AnyActorRef } from 'xstate';

/**
 * XState's `getPersistedSnapshot()` for Obra's machine actors, made cheaper — the one place that reads XState's
 * internals (`_nodes`, `_syncSnapshot`), pinned to the installed XState by a test that compares it with
 * `getPersistedSnapshot()` at every step of a run (test/persisted/persisted-snapshots.test.ts). XState walks
 * every context, every time, looking for actor references to replace, and builds every object anew; Obra's
 * contexts are plain data whose parts keep their identity from step to step, so each part is looked at once,
 * and whatever did not move is given as the very same object (which lets the journal's diff skip it by
 * identity). Anything unusual falls back to XState's own.
 */

/** Obra's machines have no history states: every persisted snapshot shares this one empty object. */
const NO_HISTORY = Object.freeze({});

/** An actor's persisted snapshot, the snapshot it was made from, its entry in its parent's, its children's. */
interface Persisted {
  snapshot: unknown;
  json: unknown;
  entry: unknown;
  children: Record<string, unknown> | null;
}

/**
 * XState's `getPersistedSnapshot()` for machine actors whose contexts hold only plain data, without walking
 * the same objects again and again: an object once found free of actor references stays so (Obra never
 * mutates context data; every change is a new object). Anything unusual falls back to XState's own.
 */
export class PersistedSnapshots {
  private readonly plain = new WeakSet<object>();
  /**
   * Each actor's last snapshot and what it gave: an actor that did not move gives the very same object again,
   * and so do its entry among its parent's children and the children object itself — which lets the journal's
   * diff (by identity) skip them without looking inside.
   */
  private readonly last = new WeakMap<AnyActorRef, Persisted>();

  persist(actor: AnyActorRef): unknown {
    return this.persisted(actor).json;
  }

  private persisted(actor: AnyActorRef): Persisted {
    const snapshot = actor.getSnapshot() as Record<string, unknown> | undefined;
    const before = this.last.get(actor);
    if (before && before.snapshot === snapshot) {
      // The same snapshot: the same JSON, unless one of its children moved (a parent's snapshot stays the very
      // same object while only its invoked child moves).
      if (!before.children) return before;
      const children = this.childrenOf(snapshot!.children as Record<string, AnyActorRef>, before.children);
      return children === before.children ? before : this.remember(actor, snapshot, { ...(before.json as object), children }, children);
    }
    if (!snapshot || typeof snapshot !== 'object' || !('machine' in snapshot) || !('_nodes' in snapshot)) {
      // A promise actor's persisted snapshot is its snapshot: it stays valid while the snapshot does.
      return this.remember(actor, snapshot, actor.getPersistedSnapshot(), null);
    }
    const { _nodes, tags, machine, children, context, can, hasTag, matches, getMeta, toJSON, ...json } = snapshot;
    const history = json.historyValue as Record<string, unknown> | undefined;
    // Only a machine snapshot found plain is remembered: its context is the last one checked for this actor.
    const checked = (before?.snapshot as { context?: unknown } | undefined)?.context;
    if ((history && Object.keys(history).length) || !this.contextIsPlain(context, checked)) {
      // Anything unusual: XState's own, every time (nothing cached).
      const persisted = actor.getPersistedSnapshot();
      return { snapshot: undefined, json: persisted, entry: this.entryOf(actor, persisted), children: null };
    }
    const childrenJson = this.childrenOf(children as Record<string, AnyActorRef>, null);
    return this.remember(actor, snapshot, { ...json, context, children: childrenJson, historyValue: NO_HISTORY }, childrenJson);
  }

  /** The children's entries; `previous` itself when every entry is the same object as there. */
  private childrenOf(refs: Record<string, AnyActorRef>, previous: Record<string, unknown> | null): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    let same = previous !== null;
    let count = 0;
    for (const id in refs) {
      const entry = this.persisted(refs[id]!).entry;
      out[id] = entry;
      if (same && previous![id] !== entry) same = false;
      count += 1;
    }
    return same && count === Object.keys(previous!).length ? previous! : out;
  }

  private remember(actor: AnyActorRef, snapshot: unknown, json: unknown, children: Record<string, unknown> | null): Persisted {
    const made = { snapshot, json, entry: this.entryOf(actor, json), children };
    this.last.set(actor, made);
    return made;
  }

  /** What a parent's persisted snapshot holds for a child. */
  private entryOf(actor: AnyActorRef, json: unknown): unknown {
    const ref = actor as AnyActorRef & { _syncSnapshot?: unknown; systemId?: string };
    return { snapshot: json, src: ref.src, systemId: ref.systemId, syncSnapshot: ref._syncSnapshot };
  }

  /**
   * A context with no actor reference in it: only the values that are not the very same as in the actor's
   * previous (already checked) context are looked into.
   */
  private contextIsPlain(context: unknown, previous: unknown): boolean {
    if (context === previous) return true;
    if (previous === null || typeof previous !== 'object' || context === null || typeof context !== 'object') return this.isPlain(context);
    if (isActorRef(context)) return false;
    const before = previous as Record<string, unknown>;
    for (const key in context as Record<string, unknown>) {
      const value = (context as Record<string, unknown>)[key];
      if (value !== before[key] && !this.isPlain(value)) return false;
    }
    return true;
  }

  /** No actor reference anywhere inside (what XState's persistContext looks for). */
  private isPlain(value: unknown): boolean {
    if (value === null || typeof value !== 'object') return true;
    if (this.plain.has(value)) return true;
    if (isActorRef(value)) return false;
    for (const key in value as Record<string, unknown>) if (!this.isPlain((value as Record<string, unknown>)[key])) return false;
    this.plain.add(value);
    return true;
  }
}

/** What XState's persistContext takes for an actor reference. */
const isActorRef = (value: object) => 'sessionId' in value && 'send' in value && 'ref' in value;
