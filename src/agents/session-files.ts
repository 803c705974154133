import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';

/**
 * Where each CLI keeps a session's conversation on this machine: the file a Restate worker reads after a call to
 * carry the conversation with the task, and the place it puts a carried copy back before a resume elsewhere.
 * Measured on the real CLIs (copying the file alone to a fresh HOME was enough for each to resume with its
 * history): Claude Code and Qwen Code name the file from the working folder and the session id, Codex from the
 * thread's day, Gemini CLI from a project slug it keeps per folder.
 */

/** A folder as Claude Code and Qwen Code name it: every non-alphanumeric character turned into '-'. */
const dashed = (workdir: string) => resolve(workdir).replace(/[^a-zA-Z0-9]/g, '-');

const homeOf = (env: NodeJS.ProcessEnv) => env.HOME ?? homedir();

/** Qwen Code: `~/.qwen/projects/<folder, dashed>/chats/<id>.jsonl`. */
export function qwenSessionFile(sessionId: string, workdir: string, env: NodeJS.ProcessEnv): string {
  return join(homeOf(env), '.qwen', 'projects', dashed(workdir), 'chats', `${sessionId}.jsonl`);
}

/** Points a Qwen Code session's first record at `workdir` (the CLI hashes its `cwd` to tell the session's folder). */
export function adoptQwenSession(file: string, workdir: string): void {
  const text = readFileSync(file, 'utf8');
  const end = text.indexOf('\n');
  const first = end < 0 ? text : text.slice(0, end);
  let record: { cwd?: unknown };
  try {
    record = JSON.parse(first) as { cwd?: unknown };
  } catch {
    return;
  }
  const cwd = resolve(workdir);
  if (record.cwd === undefined || record.cwd === cwd) return;
  writeFileSync(file, JSON.stringify({ ...record, cwd }) + (end < 0 ? '' : text.slice(end)));
}

/** 10000-01-01T00:00:00Z in ms: an ISO date from then on has a six-digit, signed year. */
const YEAR_10000 = 253_402_300_800_000;

/**
 * Codex: the thread's rollout under `$CODEX_HOME/sessions/YYYY/MM/DD/`, found by its id; a copy with none here
 * goes under the day the thread began (a thread id is a UUIDv7: its first 48 bits are that instant in ms). An id
 * that is not one (the session id Obra makes before Codex has named the thread) goes under today: read as a
 * time, its bits could name a year past 9999, which has no YYYY.
 */
export function codexSessionFile(threadId: string, codexHome: string, found: string | null): string {
  if (found) return found;
  const hex = threadId.replace(/-/g, '');
  const ms = hex[12] === '7' ? parseInt(hex.slice(0, 12), 16) : NaN;
  const began = new Date(Number.isFinite(ms) && ms < YEAR_10000 ? ms : Date.now()).toISOString();
  const [day, time] = [began.slice(0, 10), began.slice(11, 19).replace(/:/g, '-')];
  const [y, m, d] = day.split('-') as [string, string, string];
  return join(codexHome, 'sessions', y, m, d, `rollout-${day}T${time}-${threadId}.jsonl`);
}

/** Gemini CLI's slug of a folder name (as its project registry makes it). */
export function geminiSlug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '-').replace(/-+/g, '-').replace(/^-|-$/g, '') || 'project';
}

/**
 * Gemini CLI: `~/.gemini/tmp/<slug>/chats/session-<YYYY-MM-DDTHH-MM>-<first 8 hex of the id>.jsonl`. The slug is
 * the one `~/.gemini/projects.json` or a folder's `.project_root` marker gives the working folder, else the
 * one the CLI would claim: its base name slugged, with `-1`, `-2`… when another folder owns it.
 */
export function geminiSessionFile(sessionId: string, workdir: string, env: NodeJS.ProcessEnv, now = new Date()): string {
  const base = join(homeOf(env), '.gemini', 'tmp');
  const folder = resolve(workdir);
  const slug = geminiSlugFor(folder, base, join(homeOf(env), '.gemini', 'projects.json'));
  const chats = join(base, slug, 'chats');
  const suffix = `-${sessionId.slice(0, 8)}.jsonl`;
  const found = existsSync(chats) ? readdirSync(chats).find((name) => name.startsWith('session-') && name.endsWith(suffix)) : undefined;
  if (found) return join(chats, found);
  const stamp = now.toISOString().slice(0, 16).replace(':', '-');
  return join(chats, `session-${stamp}${suffix}`);
}

function geminiSlugFor(folder: string, base: string, registry: string): string {
  const mapped = readJson<{ projects?: Record<string, string> }>(registry)?.projects?.[folder];
  if (mapped) return mapped;
  const ownerOf = (slug: string) => readText(join(base, slug, '.project_root'))?.trim() ?? null;
  const owned = existsSync(base) ? readdirSync(base).find((slug) => ownerOf(slug) === folder) : undefined;
  if (owned) return owned;
  const slug = geminiSlug(basename(folder));
  for (let n = 0; ; n++) {
    const candidate = n ? `${slug}-${n}` : slug;
    const owner = ownerOf(candidate);
    if (owner === null || owner === folder) return candidate;
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function readJson<T>(path: string): T | null {
  const text = readText(path);
  if (text === null) return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}
