/**
 * Compact journal entries: each transition stores only what changed since the previous one.
 *
 * A run's persisted snapshot is mostly the same from one transition to the next (the task, the prompt, the
 * agent's full output...), and the parts that do change are assigned by XState as new objects while the rest
 * keeps its identity. So the encoder diffs the new snapshot against the previous one by reference, and writes
 * the changed subtrees only. A value it has already written (the agent call that is both an event's output and
 * the new `context.call`, the prompt that reappears in the iteration record) is written once and referenced
 * after that. Every so often — at least at every new iteration — a line holds the whole snapshot (a
 * checkpoint), so reading the latest state never needs more than the lines since the last checkpoint.
 *
 * Encoded values are plain JSON with two reserved shapes:
 *   { "$r": [source, ...path] }  a value written before: source "p" = the previous state, "n" = the new state
 *                                being built by this line, "e" = this line's event
 *   { "$lit": {...} }            an object of the data that happens to have a "$r" or "$lit" key
 */

export type Path = (string | number)[];
type Source = 'p' | 'n' | 'e';

/** A patch operation: set `path` to the (encoded) value, or delete it. */
export type PatchOp = [Path, unknown] | [Path];

/** Strings shorter than this are repeated rather than referenced (a reference costs ~30 bytes). */
const MIN_SHARED_STRING = 64;
/** Objects whose JSON is shorter than this are repeated rather than referenced. */
const MIN_SHARED_OBJECT = 96;

interface Written {
  source: Source;
  path: Path;
  /** The line that wrote it: within that line the path is valid as written, after it only if still there. */
  line: number;
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** What the encoder produced for one transition: JSON texts ready to be put into a journal line. */
export interface EncodedStep {
  /** The event, with values shared with the snapshot written once. */
  event: string;
  /** `checkpoint`: the whole snapshot; `patch`: a JSON array of patch operations against the previous one. */
  kind: 'checkpoint' | 'patch';
  body: string;
}

export class SnapshotEncoder {
  private previous: unknown = undefined;
  private written = new Map<unknown, Written>();
  /** Event values that the state took over (e.g. an actor's output assigned to the context), per line. */
  private moves: { from: Path; to: Path; line: number }[] = [];
  private line = 0;
  private linesSinceCheckpoint = 0;
  private readonly stack: Path = [];
  private source: Source = 'n';
  /** During a patch operation: the path it sets (a reference into its own value is relative to it). */
  private opPath: Path = [];

  constructor(private readonly checkpointEvery = 64) {}

  /** Forgets the previous state: the next step is written as a checkpoint. */
  reset(): void {
    this.previous = undefined;
    this.written = new Map();
    this.moves = [];
  }

  encode(event: unknown, next: unknown, options: { checkpoint?: boolean } = {}): EncodedStep {
    this.line += 1;
    const checkpoint = options.checkpoint || this.previous === undefined || this.linesSinceCheckpoint >= this.checkpointEvery;
    // Values of earlier lines are only referenced while a checkpoint window lasts: this bounds what is kept.
    if (checkpoint) {
      this.written = new Map();
      this.moves = [];
    }

    this.source = 'e';
    this.opPath = [];
    this.stack.length = 0;
    const eventText = this.write(event);

    let kind: EncodedStep['kind'];
    let body: string;
    this.source = 'n';
    if (checkpoint) {
      kind = 'checkpoint';
      this.opPath = [];
      this.stack.length = 0;
      body = this.write(next);
      this.linesSinceCheckpoint = 0;
    } else {
      kind = 'patch';
      const ops: string[] = [];
      this.diff(this.previous, next, [], ops);
      body = `[${ops.join(',')}]`;
      this.linesSinceCheckpoint += 1;
    }
    this.previous = next;
    return { event: eventText, kind, body };
  }

  private diff(before: unknown, after: unknown, path: Path, ops: string[]): void {
    if (before === after) return;
    if (isPlainObject(before) && isPlainObject(after)) {
      for (const key in after) {
        const value = after[key];
        if (value === undefined) continue;
        path.push(key);
        this.diff(before[key], value, path, ops);
        path.pop();
      }
      for (const key in before) {
        if (before[key] !== undefined && after[key] === undefined) ops.push(`[${JSON.stringify([...path, key])}]`);
      }
      return;
    }
    this.opPath = path.slice();
    this.stack.length = 0;
    this.stack.push(...path);
    ops.push(`[${JSON.stringify(this.opPath)},${this.write(after)}]`);
  }

  /** JSON of `value`, with values written before replaced by references; registers what it writes. */
  private write(value: unknown): string {
    if (value === null || value === undefined) return 'null';
    switch (typeof value) {
      case 'string': {
        if (value.length < MIN_SHARED_STRING) return JSON.stringify(value);
        const ref = this.referenceTo(value);
        if (ref) return ref;
        this.remember(value);
        return JSON.stringify(value);
      }
      case 'number':
        return Number.isFinite(value) ? String(value) : 'null';
      case 'boolean':
        return value ? 'true' : 'false';
      case 'object': {
        const ref = this.referenceTo(value);
        if (ref) return ref;
        let text: string;
        if (Array.isArray(value)) {
          const parts: string[] = [];
          for (let i = 0; i < value.length; i++) {
            const item = value[i] as unknown;
            this.stack.push(i);
            parts.push(item === undefined || typeof item === 'function' || typeof item === 'symbol' ? 'null' : this.write(item));
            this.stack.pop();
          }
          text = `[${parts.join(',')}]`;
        } else if (typeof (value as { toJSON?: unknown }).toJSON === 'function') {
          return JSON.stringify(value);
        } else {
          const object = value as Record<string, unknown>;
          const parts: string[] = [];
          for (const key in object) {
            const item = object[key];
            if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
            this.stack.push(key);
            parts.push(`${JSON.stringify(key)}:${this.write(item)}`);
            this.stack.pop();
          }
          text = `{${parts.join(',')}}`;
          if ('$r' in object || '$lit' in object) text = `{"$lit":${text}}`;
        }
        if (text.length >= MIN_SHARED_OBJECT) this.remember(value);
        return text;
      }
      default:
        return 'null';
    }
  }

  private remember(value: unknown): void {
    this.written.set(value, { source: this.source, path: this.stack.slice(), line: this.line });
  }

  private referenceTo(value: unknown): string | null {
    const seen = this.written.get(value);
    if (!seen) return null;
    let source: Source;
    let path = seen.path;
    if (seen.line === this.line) {
      source = seen.source;
    } else {
      // From an earlier line: still valid only if the previous state holds the very same value there.
      if (seen.source === 'e') {
        const moved = this.inState(seen);
        if (!moved) return null;
        path = moved;
      }
      if (getIn(this.previous, path) !== value) return null;
      source = 'p';
    }
    const ref = `{"$r":${JSON.stringify([source, ...path])}}`;
    // An event's values are gone after its line: once the state holds one, later lines point into the state
    // (for the value itself and, through the move, for everything inside it).
    if (seen.source === 'e' && this.source === 'n') {
      this.moves.push({ from: seen.path, to: this.stack.slice(), line: seen.line });
      this.remember(value);
    }
    return ref;
  }

  /** Where the state took an earlier event's value (or the value around it) to, if it did. */
  private inState(seen: Written): Path | null {
    for (const move of this.moves) {
      if (move.line !== seen.line || move.from.length > seen.path.length) continue;
      if (move.from.every((key, i) => seen.path[i] === key)) return [...move.to, ...seen.path.slice(move.from.length)];
    }
    return null;
  }
}

export function getIn(root: unknown, path: Path): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

/** Rebuilds snapshots from encoded steps, in journal order. Earlier states are never mutated. */
export class SnapshotDecoder {
  state: unknown = undefined;

  /** Applies one step; returns the decoded event and the new state. */
  apply(event: unknown, step: { checkpoint?: unknown; patch?: unknown }): { event: unknown; state: unknown } {
    const previous = this.state;
    const roots = { p: previous, e: undefined as unknown, n: undefined as unknown };
    const decodedEvent = resolve(event, roots, 'e', []);
    roots.e = decodedEvent;
    if (step.checkpoint !== undefined) {
      this.state = resolve(step.checkpoint, roots, 'n', []);
    } else if (Array.isArray(step.patch)) {
      if (previous === undefined) throw new Error('a patch without a checkpoint before it');
      let state: unknown = previous;
      const owned = new WeakSet<object>();
      for (const op of step.patch as PatchOp[]) {
        const path = op[0];
        if (op.length === 1) {
          state = deleteIn(state, path, 0, owned);
        } else {
          roots.n = state;
          const value = resolve(op[1], roots, 'n', path);
          state = setIn(state, path, 0, value, owned);
        }
      }
      this.state = state;
    } else {
      throw new Error('an entry with neither a checkpoint nor a patch');
    }
    return { event: decodedEvent, state: this.state };
  }
}

interface Roots {
  p: unknown;
  e: unknown;
  n: unknown;
}

/**
 * Replaces references and unwraps `$lit` in a freshly parsed value (mutating it: it belongs to no one else).
 * `self`/`at` say where the value will live, so a reference into the value itself can be followed.
 */
function resolve(value: unknown, roots: Roots, self: Source, at: Path): unknown {
  const top = { value };
  walk(top, 'value', roots, self, at, top);
  return top.value;
}

function walk(parent: Record<string | number, unknown>, key: string | number, roots: Roots, self: Source, at: Path, top: { value: unknown }): void {
  const value = parent[key];
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) walk(value as unknown as Record<number, unknown>, i, roots, self, at, top);
    return;
  }
  const object = value as Record<string, unknown>;
  if ('$r' in object && Array.isArray(object.$r)) {
    const [source, ...path] = object.$r as [Source, ...Path];
    parent[key] = follow(source, path, roots, self, at, top);
    return;
  }
  let target = object;
  if ('$lit' in object && isPlainObject(object.$lit)) {
    target = object.$lit;
    parent[key] = target;
  }
  for (const k in target) walk(target, k, roots, self, at, top);
}

function follow(source: Source, path: Path, roots: Roots, self: Source, at: Path, top: { value: unknown }): unknown {
  // A reference into the value being decoded (written earlier in the same value) is relative to where it goes.
  if (source === self && startsWith(path, at)) return getIn(top.value, path.slice(at.length));
  const root = source === 'p' ? roots.p : source === 'e' ? roots.e : roots.n;
  const found = getIn(root, path);
  if (found === undefined) throw new Error(`a reference to ${source}:${path.join('.')} that points nowhere`);
  return found;
}

function startsWith(path: Path, prefix: Path): boolean {
  if (path.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (path[i] !== prefix[i]) return false;
  return true;
}

function copyOf(node: unknown, owned: WeakSet<object>): Record<string | number, unknown> {
  if (node !== null && typeof node === 'object' && owned.has(node)) return node as Record<string, unknown>;
  const copy = Array.isArray(node) ? node.slice() : isPlainObject(node) ? { ...node } : {};
  owned.add(copy);
  return copy as Record<string | number, unknown>;
}

function setIn(node: unknown, path: Path, i: number, value: unknown, owned: WeakSet<object>): unknown {
  if (i === path.length) return value;
  const copy = copyOf(node, owned);
  const key = path[i]!;
  copy[key] = setIn(copy[key], path, i + 1, value, owned);
  return copy;
}

function deleteIn(node: unknown, path: Path, i: number, owned: WeakSet<object>): unknown {
  if (node === null || typeof node !== 'object') return node;
  const copy = copyOf(node, owned);
  const key = path[i]!;
  if (i === path.length - 1) delete copy[key];
  else copy[key] = deleteIn(copy[key], path, i + 1, owned);
  return copy;
}
