import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Agent, AgentCallRequest } from '../../agents/agent.js';
import { transcriptPath } from '../../agents/claude-code-agent.js';
import type { AgentCallRecord } from '../../core/types.js';
import type { RestateClient } from './client.js';
import type { SavedTranscript, SessionHold } from './model.js';

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
}

/**
 * An agent whose session may have been used on another machine. Around each call:
 * - the session is taken in its ObraSession object (one call per session anywhere in the cluster; a later epoch
 *   of the same run takes it over from a worker that lost the run);
 * - a transcript this machine lacks is restored from the one saved after the session's last call, at the path
 *   the CLI reads for this working folder — then `--resume` goes on with the same conversation;
 * - with none to restore, the call starts a fresh session (same id) and Obra's own context carries the task on;
 *   the call's record says which happened;
 * - afterwards the transcript is saved (gzip) with the release, for whichever worker calls next.
 * Transcripts are kept in Restate rather than beside the task's branch: they move with the session's lock in
 * one call, need no push of their own, and never land in the user's repository history.
 */
export class SessionCarrier implements Agent {
  readonly name: string;
  readonly inProcess: boolean | undefined;

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

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const sessionId = request.sessionId;
    if (!sessionId) return this.inner.call(request);
    const { client, runId, epoch, worker } = this.options;
    const hold = await this.acquire(sessionId, request.signal);
    const here = { ...request, workdir: this.options.workdirHere?.(request.workdir) ?? request.workdir };
    const path = transcriptPath(sessionId, here.workdir, this.options.env);
    try {
      let call = here;
      let session: AgentCallRecord['session'];
      if (!existsSync(path) && hold.transcript) {
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, gunzipSync(Buffer.from(hold.transcript.gzipBase64, 'base64')));
        session = { restored: true, note: `transcript restored on ${worker} (saved by ${hold.transcript.savedBy})` };
      } else if (!existsSync(path) && here.mode === 'resume') {
        call = { ...here, mode: 'create' };
        session = { restored: false, note: `no transcript of session ${sessionId} on ${worker} nor in Restate: a fresh session, going on from Obra's own context` };
      }
      const record = await this.inner.call(call);
      return session ? { ...record, session } : record;
    } finally {
      await client.session(sessionId, 'release', { runId, epoch, transcript: this.saved(path) }).catch(() => {});
    }
  }

  private async acquire(sessionId: string, signal?: AbortSignal): Promise<SessionHold> {
    const { client, runId, epoch, worker } = this.options;
    for (let wait = 200; ; wait = Math.min(wait * 2, 5_000)) {
      const hold = await client.session<SessionHold>(sessionId, 'acquire', { runId, epoch, worker });
      if (hold.ok) return hold;
      signal?.throwIfAborted();
      await sleep(wait, undefined, { signal });
    }
  }

  /** The transcript at `path`, gzipped for Restate (null when there is none, or it is too big to keep there). */
  private saved(path: string): SavedTranscript | null {
    if (!existsSync(path)) return null;
    const gzipped = gzipSync(readFileSync(path));
    if (gzipped.length > MAX_SAVED_BYTES) return null;
    return { gzipBase64: gzipped.toString('base64'), bytes: gzipped.length, savedAt: Date.now(), savedBy: this.options.worker };
  }
}
