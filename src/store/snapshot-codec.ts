/**
 * Compact journal entries: each transition stores only what changed since the previous one.
 *
 * A run's persisted snapshot is mostly the same from one transition to the next (the task, the prompt, the
 * agent's full output...), and the parts that do change are assigned by XState as new objects while the rest
 * keeps its identity. So the encoder diffs the new snapshot against the previous one by reference, and writes
 * the changed subtrees only. A large value it has already written (the agent call that is both an event's
 * output and the new `context.call`, the prompt that reappears in the iteration record) is written once and
 * referenced after that. At least at every new iteration a line holds the whole snapshot (a checkpoint), so
 * reading the latest state never needs more than the lines since the last checkpoint.
 *
 * Values stay plain JSON: where a reference goes, the value holds `null` and a side table says what belongs
 * there — `[where, source, ...path]`, `where` relative to the value, `source` "p" (the previous state), "n"
 * (the new state, as built so far by this line) or "e" (this line's event). Values too small to be worth a
 * reference are written by the native JSON.stringify in one go.
 */

export type Path = (string | number)[];
type Source = 'p' | 'n' | 'e';

/** Where a reference goes (relative to its value), and what it points to. */
export type Reference = [Path, Source, ...Path];

/** A patch operation: set `path` to the value (with its references), or delete it. */
export type PatchOp = [Path, unknown, Reference[]?] | [Path];

/** Strings shorter than this are repeated rather than referenced. */
const MIN_SHARED_STRING = 128;
/** Objects whose JSON is shorter than this are repeated rather than referenced (and written natively). */
const MIN_SHARED_OBJECT = 256;

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
  /** The event, and its references (JSON of a `Reference[]`, or null when it has none). */
  event: string;
  eventRefs: string | null;
  /** `checkpoint`: the whole snapshot (with `refs`); `patch`: a JSON array of `PatchOp`s. */
  kind: 'checkpoint' | 'patch';
  body: string;
  refs: string | null;
}

/** About how much of `budget` characters of JSON `value` leaves (negative: it is bigger); stops early. */
function roomLeft(value: unknown, budget: number): number {
  if (value === null || value === undefined) return budget - 4;
  switch (typeof value) {
    case 'string':
      return budget - value.length - 2;
    case 'object': {
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length && budget >= 0; i++) budget = roomLeft(value[i], budget - 1);
        return budget - 2;
      }
      const object = value as Record<string, unknown>;
      for (const key in object) {
        budget = roomLeft(object[key], budget - key.length - 4);
        if (budget < 0) return budget;
      }
      return budget - 2;
    }
    default:
      return budget - 8;
  }
}

const quotedKeys = new Map<string, string>();
const quote = (key: string) => {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = JSON.stringify(key);
    if (quotedKeys.size < 10_000) quotedKeys.set(key, quoted);
  }
  return quoted;
};

export class SnapshotEncoder {
  private previous: unknown = undefined;
  private written = new Map<unknown, Written>();
  /** Event values that the state took over (e.g. an actor's output assigned to the context), per line. */
  private moves: { from: Path; to: Path; line: number }[] = [];
  private line = 0;
  private linesSinceCheckpoint = 0;
  private readonly stack: Path = [];
  private source: Source = 'n';
  /** Where the value being written goes: references are recorded relative to it. */
  private base = 0;
  private refs: string[] = [];

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
    const [eventText, eventRefs] = this.value(event, []);
    this.source = 'n';
    let step: EncodedStep;
    if (checkpoint) {
      const [body, refs] = this.value(next, []);
      step = { event: eventText, eventRefs, kind: 'checkpoint', body, refs };
      this.linesSinceCheckpoint = 0;
    } else {
      const ops: string[] = [];
      this.diff(this.previous, next, [], ops);
      step = { event: eventText, eventRefs, kind: 'patch', body: `[${ops.join(',')}]`, refs: null };
      this.linesSinceCheckpoint += 1;
    }
    this.previous = next;
    return step;
  }

  /** A whole value written at `at`: its JSON and its reference table. */
  private value(value: unknown, at: Path): [string, string | null] {
    this.stack.length = 0;
    this.stack.push(...at);
    this.base = at.length;
    this.refs = [];
    const text = value === undefined ? 'null' : this.write(value);
    return [text, this.refs.length ? `[${this.refs.join(',')}]` : null];
  }

  private diff(before: unknown, after: unknown, path: Path, ops: string[]): void {
    if (before === after) return;
    if (isPlainObject(before) && isPlainObject(after)) {
      for (const key in after) {
        const value = after[key];
        // The same value (most of them, step to step): nothing to look into.
        if (value === undefined || value === before[key]) continue;
        path.push(key);
        this.diff(before[key], value, path, ops);
        path.pop();
      }
      for (const key in before) {
        if (before[key] !== undefined && after[key] === undefined) ops.push(`[${JSON.stringify([...path, key])}]`);
      }
      return;
    }
    const [text, refs] = this.value(after, path);
    ops.push(`[${JSON.stringify(path)},${text}${refs ? `,${refs}` : ''}]`);
  }

  /** JSON of `value`; values written before become references (null here, an entry in the table). */
  private write(value: unknown): string {
    if (value === null || value === undefined) return 'null';
    switch (typeof value) {
      case 'string': {
        if (value.length < MIN_SHARED_STRING) return JSON.stringify(value);
        if (this.referTo(value)) return 'null';
        this.remember(value);
        return JSON.stringify(value);
      }
      case 'number':
        return Number.isFinite(value) ? String(value) : 'null';
      case 'boolean':
        return value ? 'true' : 'false';
      case 'object': {
        if (this.referTo(value)) return 'null';
        // Small values are written natively in one go (and are not worth referencing later).
        if (roomLeft(value, MIN_SHARED_OBJECT) >= 0 || typeof (value as { toJSON?: unknown }).toJSON === 'function') return JSON.stringify(value) ?? 'null';
        let text: string;
        if (Array.isArray(value)) {
          text = '[';
          for (let i = 0; i < value.length; i++) {
            const item = value[i] as unknown;
            this.stack.push(i);
            text += `${i ? ',' : ''}${item === undefined || typeof item === 'function' || typeof item === 'symbol' ? 'null' : this.write(item)}`;
            this.stack.pop();
          }
          text += ']';
        } else {
          const object = value as Record<string, unknown>;
          text = '{';
          for (const key in object) {
            const item = object[key];
            if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
            this.stack.push(key);
            text += `${text.length > 1 ? ',' : ''}${quote(key)}:${this.write(item)}`;
            this.stack.pop();
          }
          text += '}';
        }
        this.remember(value);
        return text;
      }
      default:
        return 'null';
    }
  }

  private remember(value: unknown): void {
    this.written.set(value, { source: this.source, path: this.stack.slice(), line: this.line });
  }

  /** Records a reference to `value` at the current place when it was written before (and still is there). */
  private referTo(value: unknown): boolean {
    const seen = this.written.get(value);
    if (!seen) return false;
    let source: Source;
    let path = seen.path;
    if (seen.line === this.line) {
      source = seen.source;
    } else {
      // From an earlier line: still valid only if the previous state holds the very same value there.
      if (seen.source === 'e') {
        const moved = this.inState(seen);
        if (!moved) return false;
        path = moved;
      }
      if (getIn(this.previous, path) !== value) return false;
      source = 'p';
    }
    this.refs.push(JSON.stringify([this.stack.slice(this.base), source, ...path]));
    // An event's values are gone after its line: once the state holds one, later lines point into the state
    // (for the value itself and, through the move, for everything inside it).
    if (seen.source === 'e' && this.source === 'n') {
      this.moves.push({ from: seen.path, to: this.stack.slice(), line: seen.line });
      this.remember(value);
    }
    return true;
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
  apply(event: unknown, step: { eventRefs?: unknown; checkpoint?: unknown; refs?: unknown; patch?: unknown }): { event: unknown; state: unknown } {
    const previous = this.state;
    const roots: Roots = { p: previous, e: undefined, n: undefined };
    const decodedEvent = place(event, step.eventRefs, roots, 'e', []);
    roots.e = decodedEvent;
    if (step.checkpoint !== undefined) {
      this.state = place(step.checkpoint, step.refs, roots, 'n', []);
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
          const value = place(op[1], op[2], roots, 'n', path);
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
 * Puts the referenced values into a freshly parsed value (mutating it: it belongs to no one else), in the
 * order they were written. `self`/`at` say where the value goes, so a reference into itself can be followed.
 */
function place(value: unknown, refs: unknown, roots: Roots, self: Source, at: Path): unknown {
  if (!Array.isArray(refs)) return value;
  const top = { value };
  for (const ref of refs as Reference[]) {
    const [where, source, ...path] = ref;
    const target = source === self && startsWith(path, at) ? getIn(top.value, path.slice(at.length)) : getIn(source === 'p' ? roots.p : source === 'e' ? roots.e : roots.n, path);
    if (target === undefined) throw new Error(`a reference to ${source}:${path.join('.')} that points nowhere`);
    if (where.length === 0) {
      top.value = target;
      continue;
    }
    const parent = getIn(top.value, where.slice(0, -1));
    if (parent === null || typeof parent !== 'object') throw new Error(`a reference placed at ${where.join('.')}, which is not there`);
    (parent as Record<string | number, unknown>)[where.at(-1)!] = target;
  }
  return top.value;
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
