import type { ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { RunStore } from '../store/run-store.js';
import { MERGE_STRATEGIES, MergeConflictError, type MergeStrategy } from '../workspace/conflict.js';
import type { BackgroundDrives } from '../workbench/drives.js';

/**
 * `obra view`'s HTTP API: the CLI's actions on the tasks of the store, as JSON (src/workbench/actions.ts and the
 * files host's own functions do the work; the errors are theirs, as `{ "error": "…" }` with a 4xx status).
 * `answer` and `resume` drive the run on in this process (src/workbench/drives.ts): the request is answered once
 * the run has been checked, the drive goes on behind it.
 */

export interface ApiContext {
  storeDir: string;
  config: ObraConfig;
  /** Where a task's relative `repo` is resolved. */
  cwd: string;
  /** Where `answer` and `resume` drive runs on. */
  drives: BackgroundDrives;
}

export interface ApiReply {
  status: number;
  body: unknown;
}

export const API_ROUTES = ['POST /api/tasks', 'POST /api/runs/<id>/{answer,pause,resume,cancel,retry,merge,discard}', 'GET /api/runs/<id>/diff', 'POST /api/merge-queue'];

/** The reply to an API request, or null when `path` is no API action (the caller serves it, or 404s). */
export async function handleApi(method: string, path: string, readBody: () => Promise<unknown>, ctx: ApiContext): Promise<ApiReply | null> {
  const action = /^\/api\/runs\/([^/]+)\/([a-z]+)$/.exec(path);
  if (path !== '/api/tasks' && path !== '/api/merge-queue' && !action) return null;
  try {
    if (path === '/api/merge-queue') {
      if (method !== 'POST') return methodNotAllowed('POST', path);
      refuseRestate(ctx);
      return { status: 200, body: await landFromBody(((await readBody()) ?? {}) as Record<string, unknown>, ctx) };
    }
    if (path === '/api/tasks') {
      if (method !== 'POST') return methodNotAllowed('POST', path);
      refuseRestate(ctx);
      const { submitEntry } = await actions();
      return { status: 201, body: await submitEntry(await readBody(), { storeDir: ctx.storeDir, config: ctx.config, cwd: ctx.cwd }) };
    }
    const [, runId, verb] = action!;
    if (verb === 'diff') {
      if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed('GET', path);
      return { status: 200, body: { runId, ...(await (await actions()).diffRun(runId!, ctx.storeDir)) } };
    }
    if (!ACTIONS.includes(verb!)) return { status: 404, body: { error: `no action "${verb}" — the API has ${API_ROUTES.join(', ')}` } };
    if (method !== 'POST') return methodNotAllowed('POST', path);
    refuseRestate(ctx);
    const body = ((await readBody()) ?? {}) as Record<string, unknown>;
    return await runAction(verb!, runId!, body, ctx);
  } catch (error) {
    return errorReply(error);
  }
}

/** `POST /api/merge-queue` with `{ "runIds": [...] }` or `{ "all": true }`, and optionally `"strategy"`: as `obra merge`. */
async function landFromBody(body: Record<string, unknown>, ctx: ApiContext) {
  const { runIds, all, strategy } = body;
  const ids = runIds === undefined ? undefined : Array.isArray(runIds) && runIds.length && runIds.every((id) => typeof id === 'string') ? (runIds as string[]) : bad('"runIds" must be a list of run ids');
  if (all !== undefined && typeof all !== 'boolean') bad('"all" must be true or false');
  if (Boolean(all) === Boolean(ids)) bad('give either "runIds" or "all": true');
  if (strategy !== undefined && !(MERGE_STRATEGIES as readonly unknown[]).includes(strategy)) bad(`"strategy" must be one of ${MERGE_STRATEGIES.join(', ')}`);
  return (await actions()).landRuns(all ? 'all' : ids!, { storeDir: ctx.storeDir, config: ctx.config, strategy: strategy as MergeStrategy | undefined });
}

/** Loaded on the first action: the board's pages do not wait for the engine's modules. */
const actions = () => import('../workbench/actions.js');

const ACTIONS = ['answer', 'pause', 'resume', 'cancel', 'retry', 'merge', 'discard'];

async function runAction(verb: string, runId: string, body: Record<string, unknown>, ctx: ApiContext): Promise<ApiReply> {
  // Every action names a run of this store: an unknown one is 404 before anything else is looked at.
  RunStore.open(ctx.storeDir, { create: false }).openRun(runId).close();
  const reason = optionalText(body, 'reason');
  switch (verb) {
    case 'answer': {
      const answer = optionalText(body, 'answer') ?? '';
      const allow = body.allow === undefined ? [] : Array.isArray(body.allow) && body.allow.every((r) => typeof r === 'string') ? (body.allow as string[]) : bad('"allow" must be a list of permission rules, e.g. ["Write"]');
      return { status: 202, body: await ctx.drives.answer(runId, answer, allow) };
    }
    case 'resume':
      return { status: 202, body: await ctx.drives.resume(runId) };
    case 'pause': {
      const { requestPause } = await import('../hosts/files/control-file.js');
      return { status: 200, body: await requestPause(runId, { storeDir: ctx.storeDir, reason: reason ?? 'paused by the user' }) };
    }
    case 'cancel': {
      const { requestCancel } = await import('../hosts/files/cancel.js');
      return { status: 200, body: await requestCancel(runId, { storeDir: ctx.storeDir, reason: reason ?? 'cancelled by the user' }) };
    }
    case 'retry':
      return { status: 201, body: await (await actions()).retryRun(runId, ctx.storeDir) };
    case 'merge': {
      // A conflict goes as the server's config says (merge.resolve): refused (409), or handed to an agent (202).
      const outcome = await (await actions()).mergeRun(runId, ctx.storeDir, { resolve: ctx.config.merge.resolve });
      return { status: outcome.resolution ? 202 : 200, body: outcome };
    }
    default:
      return { status: 200, body: await (await actions()).discardRun(runId, ctx.storeDir) };
  }
}

function refuseRestate(ctx: ApiContext): void {
  if (ctx.config.engine === 'restate') throw new UserError('the API of `obra view` drives the local engine only — use the CLI with --engine restate');
}

function optionalText(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || typeof value === 'string') return value;
  return bad(`"${key}" must be text`);
}

function bad(message: string): never {
  throw new UserError(message);
}

function methodNotAllowed(allowed: string, path: string): ApiReply {
  return { status: 405, body: { error: `${path} takes ${allowed} only` } };
}

/**
 * A refusal's status: 404 for a run that is not in the store, 409 for one whose state refuses it now (running,
 * a merge that conflicts or waits for its resolution), 400 for anything else the caller can fix; 500 for Obra's own failures.
 */
export function errorReply(error: unknown): ApiReply {
  const message = error instanceof Error ? error.message : String(error);
  if (!(error instanceof UserError)) return { status: 500, body: { error: `internal error: ${message}` } };
  const status = /^no run "/.test(message) ? 404 : error.exitCode === 3 || error.exitCode === 11 || error.exitCode === 12 || error.exitCode === 13 || / is (running|queued)[:;]/.test(message) ? 409 : 400;
  // A conflict carries what a resolution starts from, and its files (the page lists them).
  const conflict = error instanceof MergeConflictError ? error.conflict : null;
  return { status, body: { error: message, ...(conflict ? { conflict, conflicts: conflict.files } : {}) } };
}
