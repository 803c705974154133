import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { PermissionDenial } from '../../core/types.js';
import type { CodexTurn } from './codex-stream.js';

/**
 * Codex's sandbox refuses a write without a trace in the `--json` stream and with exit 0: only the model hears
 * `patch rejected: writing is blocked by read-only sandbox; rejected by user approval settings`. That tool output
 * is kept in the thread's rollout file (`<CODEX_HOME>/sessions/YYYY/MM/DD/rollout-…-<thread_id>.jsonl`), so the
 * refusals of one call are the rejections the rollout gained during it. A shell write fails inside the sandbox
 * (`Read-only file system`), which the stream shows when it shows the command at all.
 */
const PATCH_REJECTED = /patch rejected: ([^"\\]*)/g;
const SANDBOX_DENIED = /Read-only file system|Operation not permitted/;
/** Files a rejected patch named (`*** Add File: x`, `*** Update File: x`, `*** Delete File: x`). */
const PATCH_FILE = /\*\*\* (?:Add|Update|Delete) File: ([^\\\n"]+)/g;

/** The rule that lifts Codex's sandbox for the rest of a run (`obra answer <runId> --allow "Sandbox(danger-full-access)"`). */
export const FULL_ACCESS_RULE = 'Sandbox(danger-full-access)';

export type CodexSandbox = 'read-only' | 'workspace-write' | 'danger-full-access';

/**
 * The sandbox of one call: the configured one, widened by what a person granted — `Write` or `Edit` lifts
 * `read-only` to `workspace-write` (edits inside the working directory), `Sandbox(danger-full-access)` lifts it
 * all. Codex cannot allow one command or one path: the sandbox is all it has.
 */
export function sandboxFor(configured: CodexSandbox, granted: readonly string[]): CodexSandbox {
  if (granted.includes(FULL_ACCESS_RULE)) return 'danger-full-access';
  if (configured === 'read-only' && granted.some((rule) => rule === 'Write' || rule === 'Edit')) return 'workspace-write';
  return configured;
}

/** The thread's rollout file, or null when this CODEX_HOME does not hold it. */
export function rolloutOf(codexHome: string, threadId: string): string | null {
  const sessions = join(codexHome, 'sessions');
  if (!existsSync(sessions)) return null;
  const suffix = `-${threadId}.jsonl`;
  // Newest days first: a thread Obra drives is almost always recent.
  for (const year of listDesc(sessions)) {
    for (const month of listDesc(join(sessions, year))) {
      for (const day of listDesc(join(sessions, year, month))) {
        const dir = join(sessions, year, month, day);
        const file = listDesc(dir).find((name) => name.endsWith(suffix));
        if (file) return join(dir, file);
      }
    }
  }
  return null;
}

/** How far the rollout reaches now: rejections before this point belong to earlier calls. */
export function rolloutSize(path: string | null): number {
  if (!path) return 0;
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The refusals of one call: rejected patches in the rollout after `from`, and shell commands the sandbox stopped. */
export function refusalsOf(turn: CodexTurn, rollout: string | null, from: number, sandbox: string, stderr = ''): PermissionDenial[] {
  const denials: PermissionDenial[] = [];
  // What `obra answer --allow` takes: the sandbox is Codex's only unit of permission (see sandboxFor).
  const grant = sandbox === 'read-only' ? 'Write' : FULL_ACCESS_RULE;
  // Without the rollout, Codex's own log line on stderr (`ERROR codex_core::tools::router: error=patch rejected: …`) tells the same, without the files.
  const text = rollout ? readFrom(rollout, from) : stderr;
  // The patch is one line of the rollout (the tool call), its rejection a later one (the tool's output).
  let lastPatch: string[] = [];
  for (const line of text.split('\n')) {
    const named = [...new Set([...line.matchAll(PATCH_FILE)].map((m) => m[1]!.trim()))];
    if (named.length) lastPatch = named;
    const rejected = [...line.matchAll(PATCH_REJECTED)];
    if (!rejected.length) continue;
    const files = named.length ? named : lastPatch;
    lastPatch = [];
    denials.push({ tool: 'apply_patch', input: files.length ? files.join(', ') : `a file edit (${rejected[0]![1]!.trim()})`, rule: grant });
  }
  for (const command of turn.commands) {
    if (command.status === 'failed' && SANDBOX_DENIED.test(command.output)) denials.push({ tool: 'shell', input: command.command.slice(0, 200), rule: grant });
  }
  return denials;
}

function readFrom(path: string, from: number): string {
  let fd: number | null = null;
  try {
    fd = openSync(path, 'r');
    const size = statSync(path).size;
    const length = Math.max(0, Math.min(size - from, 16 * 1024 * 1024));
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, from);
    return buffer.toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function listDesc(dir: string): string[] {
  try {
    return readdirSync(dir).sort().reverse();
  } catch {
    return [];
  }
}
