import { z } from 'zod';
import type { IterationRecord, UsageLimit } from '../core/types.js';

/**
 * The persisted snapshot of a run, as XState's `getPersistedSnapshot()` gives it for the task machine with its
 * running iteration — the only place that knows its shape. Everything else asks through the accessors below
 * (the current iteration and its state, the effects in flight, the record being persisted, whether the run is
 * at rest), and a snapshot is checked with the schemas when a run is restored from it.
 *
 *   { status, value: "running", context: { runId, iterations, ... }, children: {
 *       iteration: { src: "iteration", snapshot: { status, value: "awaitingAgent", context: { index, ... }, children: {
 *           <id>: { src: "callAgent", snapshot: { status: "active", input: { ... } } } } } } } }
 */

const status = z.enum(['active', 'done', 'error', 'stopped']);

/** An invoked promise actor (an effect): its input is kept, so a restore can start it again. */
const effectChildSchema = z.looseObject({ src: z.string(), snapshot: z.looseObject({ status, input: z.unknown().optional(), output: z.unknown().optional() }) });

export const persistedIterationSchema = z.looseObject({
  status,
  value: z.string(),
  context: z.looseObject({
    runId: z.string(),
    index: z.number().int().positive(),
    states: z.array(z.string()),
    attempts: z.number().int(),
    sessionId: z.string().nullable(),
    retryDueAt: z.number().nullable(),
  }),
  children: z.record(z.string(), effectChildSchema),
});

export const persistedTaskSchema = z.looseObject({
  status,
  value: z.string(),
  context: z.looseObject({
    runId: z.string(),
    iterations: z.number().int().nonnegative(),
    sessionId: z.string().nullable(),
    reason: z.string().nullable(),
    question: z.string().nullable(),
  }),
  children: z.record(z.string(), z.looseObject({ src: z.string(), snapshot: z.unknown() })),
});

export type PersistedTask = z.infer<typeof persistedTaskSchema>;
export type PersistedIteration = z.infer<typeof persistedIterationSchema>;

/**
 * Checks a snapshot a run is about to be restored from, and brings one written by an earlier Obra up to today's
 * machines (context fields added since get their starting values). Returns it, or says in one line what is wrong.
 */
export function restorableSnapshot(snapshot: unknown): { ok: true; snapshot: PersistedTask } | { ok: false; problem: string } {
  const task = persistedTaskSchema.safeParse(snapshot);
  if (!task.success) return { ok: false, problem: describe('the task', task.error) };
  const child = task.data.children.iteration;
  if (!child) return { ok: true, snapshot: migrateTask(task.data) };
  const iteration = persistedIterationSchema.safeParse(child.snapshot);
  if (!iteration.success) return { ok: false, problem: describe('its running iteration', iteration.error) };
  return { ok: true, snapshot: migrateTask({ ...task.data, children: { ...task.data.children, iteration: { ...child, snapshot: migrateIteration(iteration.data) } } }) };
}

function describe(what: string, error: z.ZodError): string {
  const issue = error.issues[0];
  return `${what}'s snapshot does not fit (${issue?.path.join('.') || 'the top level'}: ${issue?.message})`;
}

/** Context fields the task machine gained after store version 2 was first written, with their starting values. */
const TASK_ADDED = { allowedTools: [], usageLimit: null } as const;
/** The same for the iteration machine. */
const ITERATION_ADDED = { idleRetries: 0, usageLimit: null } as const;

function migrateTask(task: PersistedTask): PersistedTask {
  return { ...task, context: { ...TASK_ADDED, ...task.context } };
}

function migrateIteration(iteration: PersistedIteration): PersistedIteration {
  return { ...iteration, context: { ...ITERATION_ADDED, ...iteration.context } };
}

// ---- accessors (defensive: they read snapshots from any journal line, and never throw) ----

type Loose = { [key: string]: unknown };
const object = (value: unknown): Loose | null => (value !== null && typeof value === 'object' ? (value as Loose) : null);

/** The task machine's state (`running`, `awaitingHuman`, ...), or null. */
export function taskStateOf(snapshot: unknown): string | null {
  const value = object(snapshot)?.value;
  return typeof value === 'string' ? value : null;
}

/** The task actor's status: `active`, or `done` once it reached a final state. */
export function taskStatusOf(snapshot: unknown): string {
  const value = object(snapshot)?.status;
  return typeof value === 'string' ? value : 'active';
}

/** The task machine's output, once it reached a final state. */
export function taskOutputOf(snapshot: unknown): unknown {
  return object(snapshot)?.output;
}

/** The task's context as persisted (fields absent in older runs stay absent). */
export function taskContextOf(snapshot: unknown): Loose {
  return object(object(snapshot)?.context) ?? {};
}

export interface IterationView {
  index: number;
  state: string;
  status: string;
  context: Loose;
  /** The invoked effects, by id: `{ src, status, input }`. */
  children: { src: string; status: string; input: unknown }[];
}

/** The iteration running in the snapshot, or null (between iterations, at rest, finished). */
export function runningIterationOf(snapshot: unknown): IterationView | null {
  const child = object(object(object(snapshot)?.children)?.iteration);
  const iteration = object(child?.snapshot);
  if (!iteration) return null;
  const context = object(iteration.context) ?? {};
  const children = Object.values(object(iteration.children) ?? {}).flatMap((entry) => {
    const e = object(entry);
    const s = object(e?.snapshot);
    return e && s ? [{ src: String(e.src), status: String(s.status), input: s.input }] : [];
  });
  return {
    index: typeof context.index === 'number' ? context.index : 0,
    state: typeof iteration.value === 'string' ? iteration.value : String(iteration.value),
    status: String(iteration.status ?? 'active'),
    context,
    children,
  };
}

/** The effects that were in flight (a restore starts them again): the `src` of each active invoked actor. */
export function pendingEffectsOf(snapshot: unknown): string[] {
  const iteration = runningIterationOf(snapshot);
  if (!iteration || iteration.status !== 'active') return [];
  return iteration.children.filter((c) => c.status === 'active').map((c) => c.src);
}

/** The iteration record being persisted (the input of an active `persistIteration`), or null. */
export function recordBeingPersisted(snapshot: unknown): IterationRecord | null {
  const iteration = runningIterationOf(snapshot);
  const persisting = iteration?.children.find((c) => c.src === 'persistIteration');
  return (persisting?.input as IterationRecord | undefined) ?? null;
}

/** How many iterations the task has finished (absorbed) in this snapshot. */
export function finishedIterationsOf(snapshot: unknown): number {
  const n = taskContextOf(snapshot).iterations;
  return typeof n === 'number' ? n : 0;
}

/** The permission rules a person granted for the run (`obra answer --allow`). */
export function grantedRulesOf(snapshot: unknown): string[] {
  const rules = taskContextOf(snapshot).allowedTools;
  return Array.isArray(rules) ? rules.filter((r): r is string => typeof r === 'string') : [];
}

/** The usage limit the task waits for, when it waits for one. */
export function usageLimitWaitOf(snapshot: unknown): (UsageLimit & { dueAt: number }) | null {
  if (taskStateOf(snapshot) !== 'waitingForUsageLimit') return null;
  const limit = object(taskContextOf(snapshot).usageLimit);
  return limit && typeof limit.dueAt === 'number' ? (limit as unknown as UsageLimit & { dueAt: number }) : null;
}
