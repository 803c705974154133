import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import type { SessionStore } from '../agent.js';
import { runCli } from '../cli-process.js';
import type { RawCall } from '../classify.js';
import { firstStderrLine } from '../cli-stopped.js';

/**
 * opencode keeps its sessions in a SQLite database (`~/.local/share/opencode/opencode.db`), not in one file per
 * session, so a Restate worker carries a session as opencode's own export of it: `opencode export <id>` (the
 * session's info and every message with its parts, as JSON) written to a file after each call, and
 * `opencode import <file>` before a resume on a worker whose database does not hold that copy. Measured on
 * opencode 1.18.33: an import runs in the folder it is started from and makes the session that folder's (a
 * resume from there then answers and exits, with the first turns carried); an import over a session the database
 * already has adds the messages it lacks and keeps the ones it does not know, so a session is deleted first —
 * otherwise the turns of a call the journal does not know of (cut by a crash) would stay in the conversation.
 * Each command starts the whole CLI (about 1.5 s here).
 */

/** opencode's session ids: `ses_` and 26 letters and digits. */
export const OPENCODE_SESSION_ID = /^ses_[A-Za-z0-9]+$/;

/** Long enough for opencode's start-up on a loaded machine; an export or import itself takes milliseconds. */
const COMMAND_TIMEOUT_MS = 60_000;

export interface OpencodeSessionStoreOptions {
  command: string;
  /** The agent's environment (HOME or XDG_DATA_HOME say where opencode's database is; OPENCODE_CONFIG...). */
  env: NodeJS.ProcessEnv;
  killGraceMs?: number;
}

/** Where Obra keeps its export of a session: beside opencode's database, one file per session. */
export function opencodeSessionFile(sessionId: string, env: NodeJS.ProcessEnv): string {
  const data = env.XDG_DATA_HOME ?? join(env.HOME ?? homedir(), '.local', 'share');
  return join(data, 'opencode', 'obra-sessions', `${sessionId.replace(/[^A-Za-z0-9_]/g, '_')}.json`);
}

export class OpencodeSessionStore implements SessionStore {
  constructor(private readonly options: OpencodeSessionStoreOptions) {}

  /** Writes the session, as opencode exports it, to `file` (whole, then renamed into place). */
  async save(sessionId: string, file: string, workdir: string, signal?: AbortSignal): Promise<void> {
    // Obra's own id for a call that failed before opencode reported one: opencode has no such session.
    if (!OPENCODE_SESSION_ID.test(sessionId)) return;
    const raw = await this.run(['export', sessionId], workdir, signal);
    if (raw.exitCode !== 0) throw failure(`opencode export ${sessionId}`, raw);
    let exported: { info?: { id?: unknown } };
    try {
      exported = JSON.parse(raw.stdout) as { info?: { id?: unknown } };
    } catch {
      throw new Error(`opencode export ${sessionId} printed no JSON (${raw.stdout.length} bytes)`);
    }
    if (exported.info?.id !== sessionId) throw new Error(`opencode export ${sessionId} printed another session (${String(exported.info?.id)})`);
    mkdirSync(dirname(file), { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, raw.stdout);
    renameSync(temp, file);
  }

  /** Makes opencode's session exactly `file`'s, and `workdir`'s: the one it had is deleted, then the file imported. */
  async load(sessionId: string, file: string, workdir: string, signal?: AbortSignal): Promise<void> {
    const deleted = await this.run(['session', 'delete', sessionId], workdir, signal);
    if (deleted.exitCode !== 0 && !/session not found/i.test(deleted.stderr)) throw failure(`opencode session delete ${sessionId}`, deleted);
    const imported = await this.run(['import', file], workdir, signal);
    if (imported.exitCode !== 0 || !imported.stdout.includes(sessionId)) throw failure(`opencode import ${file}`, imported);
  }

  private run(args: string[], workdir: string, signal?: AbortSignal): Promise<RawCall> {
    // From the task's folder, with PWD set to it: opencode's project folder is $PWD's, and an import makes the
    // session that folder's.
    return runCli({ file: this.options.command, args, cwd: workdir, env: { ...this.options.env, PWD: workdir }, timeoutMs: COMMAND_TIMEOUT_MS, idleTimeoutMs: null, killGraceMs: this.options.killGraceMs, signal });
  }
}

/** One line: the command, how it ended, and the first line opencode wrote to stderr (colours stripped). */
function failure(what: string, raw: RawCall): Error {
  const said = firstStderrLine(stripVTControlCharacters(raw.stderr), /^Exporting session/);
  const ended = raw.spawnError ?? (raw.stoppedBy ? `stopped (${raw.stoppedBy})` : raw.signal ? `killed by ${raw.signal}` : `exit ${raw.exitCode}`);
  return new Error(`${what} failed: ${ended}${said ? `: ${said}` : ''}`);
}
