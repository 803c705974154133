import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Agent, AgentCallRequest } from '../../agents/agent.js';
import { transcriptPath } from '../../agents/claude-code-agent.js';
import type { AgentCallRecord } from '../../core/types.js';
import type { RestateClient } from './client.js';
import type { RunTranscript, SavedTranscript, SessionHold } from './model.js';

/** A transcript above this (compressed) is not kept in Restate: the next worker then starts a fresh session. */
const MAX_SAVED_BYTES = 8 * 1024 * 1024;

export interface SessionCarrierOptions {
  client: RestateClient;
  runId: string;
  epoch: number;
  worker: string;
  /** The environment the CLI runs with (HOME or CLAUDE_CONFIG_DIR say where its transcripts are). */
  env: NodeJS.ProcessEnv;
  /** The task's folder on this worker (a moving task's checkout), from the folder the machine names. */
  workdirHere?: (workdir: string) => string;
  /** The transcript the run itself saved last (its claim gives it): newer than the session's after a failover. */
  runTranscript?: RunTranscript | null;
  /**
   * False for an agent whose sessions are not Claude Code transcripts (Codex keeps threads in its own store): the
   * session is still taken and released, but nothing is restored, and a resume goes to the CLI as it is (a thread
   * it does not hold comes back as `noConversation`, and the iteration starts a new one).
   */
  carriesTranscripts?: boolean;
}

/**
 * An agent whose session may have been used on another machine.
 * - The drive takes the session in its ObraSession object before its first call on it, and keeps it until the
 *   run settles (one caller per session anywhere in the cluster; a later epoch of the same run takes it over
 *   from a worker that lost the run's lease).
 * - Before a call, a transcript this machine lacks is restored — the newest of the run's own copy and the
 *   session's — at the path the CLI reads for this working folder; then `--resume` goes on with the same
 *   conversation. With none to restore, the call starts a fresh session (same id) and Obra's own context carries
 *   the task on; the call's record says which happened.
 * - After a call, the transcript is handed (gzip) to the run's next write to its ObraTask object — the journal
 *   lines before the next call, the iteration's record, or the settle — so what Restate holds of the
 *   conversation matches the journal a new worker resumes from: a call the journal does not know of yet is
 *   re-issued on the transcript from before it. The settle gives it to the session with the release.
 * Transcripts are kept in Restate rather than beside the task's branch: they move with the run and its session
 * in the calls a drive makes anyway, need no push of their own, and never land in the user's repository history.
 */
export class SessionCarrier implements Agent {
  readonly name: string;
  readonly inProcess: boolean | undefined;
  /** The session this drive holds, and what ObraSession had saved of it when taken. */
  private held: { sessionId: string; saved: SavedTranscript | null; path: string | null } | null = null;
  /** A call's transcript not yet handed to Restate. */
  private unsaved: { sessionId: string; path: string } | null = null;

  constructor(
    private readonly inner: Agent,
    private readonly options: SessionCarrierOptions,
  ) {
    this.name = inner.name;
    this.inProcess = inner.inProcess;
  }

  preflight(): void {
    this.inner.preflight?.();
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.inner.whenSessionFree?.(sessionId, listener) ?? (() => {});
  }

  /** The session the drive holds (its settle releases it). */
  get heldSession(): string | null {
    return this.held?.sessionId ?? null;
  }

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const sessionId = request.sessionId;
    if (!sessionId) return this.inner.call(request);
    const here = { ...request, workdir: this.options.workdirHere?.(request.workdir) ?? request.workdir };
    const path = transcriptPath(sessionId, here.workdir, this.options.env);
    const saved = await this.take(sessionId, path, request.signal);
    let call = here;
    let session: AgentCallRecord['session'];
    if (this.options.carriesTranscripts === false) {
      // Nothing to restore: the CLI's own store holds the session, or says it does not.
    } else if (!existsSync(path) && saved) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, gunzipSync(Buffer.from(saved.gzipBase64, 'base64')));
      session = { restored: true, note: `transcript restored on ${this.options.worker} (saved by ${saved.savedBy})` };
    } else if (!existsSync(path) && here.mode === 'resume') {
      call = { ...here, mode: 'create' };
      session = { restored: false, note: `no transcript of session ${sessionId} on ${this.options.worker} nor in Restate: a fresh session, going on from Obra's own context` };
    }
    try {
      const record = await this.inner.call(call);
      return session ? { ...record, session } : record;
    } finally {
      this.unsaved = { sessionId, path };
    }
  }

  /** The last call's transcript, once: for the run's next write to Restate (null when there is nothing new). */
  takeTranscript(): RunTranscript | null {
    const unsaved = this.unsaved;
    this.unsaved = null;
    if (!unsaved) return null;
    const saved = this.saved(unsaved.path);
    return saved ? { sessionId: unsaved.sessionId, ...saved } : null;
  }

  /** The session for this drive (taken once; another session of the run first lets the last one go). */
  private async take(sessionId: string, path: string, signal?: AbortSignal): Promise<SavedTranscript | null> {
    const own = this.options.runTranscript?.sessionId === sessionId ? this.options.runTranscript : null;
    if (this.held?.sessionId !== sessionId) {
      if (this.held) await this.release(this.held.sessionId, this.held.path);
      const hold = await this.acquire(sessionId, own?.savedAt, signal);
      this.held = { sessionId, saved: hold.transcript ?? null, path };
    }
    this.held.path = path;
    const shared = this.held.saved;
    return own && (!shared || own.savedAt >= shared.savedAt) ? own : shared;
  }

  /** Takes the session; its saved transcript comes with it only when newer than `newerThan` (the run's own copy). */
  private async acquire(sessionId: string, newerThan: number | undefined, signal?: AbortSignal): Promise<SessionHold> {
    const { client, runId, epoch, worker } = this.options;
    for (let wait = 200; ; wait = Math.min(wait * 2, 5_000)) {
      const hold = await client.session<SessionHold>(sessionId, 'acquire', { runId, epoch, worker, newerThan });
      if (hold.ok) return hold;
      signal?.throwIfAborted();
      await sleep(wait, undefined, { signal });
    }
  }

  private async release(sessionId: string, path: string | null): Promise<void> {
    const { client, runId, epoch } = this.options;
    if (this.unsaved?.sessionId === sessionId) this.unsaved = null;
    await client.session(sessionId, 'release', { runId, epoch, transcript: path ? this.saved(path) : null }).catch(() => {});
  }

  /** The transcript at `path`, gzipped for Restate (null when there is none, or it is too big to keep there). */
  private saved(path: string): SavedTranscript | null {
    if (!existsSync(path)) return null;
    const gzipped = gzipSync(readFileSync(path));
    if (gzipped.length > MAX_SAVED_BYTES) return null;
    return { gzipBase64: gzipped.toString('base64'), bytes: gzipped.length, savedAt: Date.now(), savedBy: this.options.worker };
  }
}
