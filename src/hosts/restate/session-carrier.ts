import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import type { Agent, AgentCallRequest, SessionStore } from '../../agents/agent.js';
import { WrappedAgent } from '../../agents/wrapped-agent.js';
import type { AgentCallRecord } from '../../core/types.js';
import type { RestateClient } from './client.js';
import type { RunTranscript, SavedTranscript, SessionHold, TranscriptMark, TranscriptRef, TranscriptWrite } from './model.js';
import { goesOnFrom, markOf, restoreTranscriptFile, savedOf, type Restored } from './transcript-file.js';

/** A transcript above this (compressed) is not kept in Restate: the next worker then starts a fresh session. */
const MAX_SAVED_BYTES = 8 * 1024 * 1024;

export interface SessionCarrierOptions {
  client: RestateClient;
  runId: string;
  epoch: number;
  worker: string;
  /** The task's folder on this worker (a moving task's checkout), from the folder the machine names. */
  workdirHere?: (workdir: string) => string;
  /** The transcript the run itself saved last (its claim gives it): newer than the session's after a failover. */
  runTranscript?: RunTranscript | null;
}

/**
 * An agent whose session may have been used on another machine. Its conversation is the CLI's own session file
 * (`Agent.sessionFile`: Claude Code's transcript, Codex's rollout, Gemini CLI's and Qwen Code's chat files, each
 * append-only); an agent with none has its session taken and released, but nothing carried: a resume the CLI
 * cannot serve there starts a new conversation.
 * - The drive takes the session in its ObraSession object before its first call on it, and keeps it until the
 *   run settles (one caller per session anywhere in the cluster; a later epoch of the same run takes it over
 *   from a worker that lost the run's lease).
 * - When the drive takes the session, the copy that matches the journal — the newest of the run's own and the
 *   session's — is made the transcript at the path the CLI reads for this working folder: restored when this
 *   machine has none, cut back when the local file goes on past it (turns the journal does not know of: a call
 *   cut by a crash, an answer lost in a server outage), rewritten when it is another conversation. Never a newer
 *   local file: resuming on it would hold a prompt twice. Then `--resume` goes on with the same conversation.
 *   With no copy anywhere, the call starts a fresh session (same id) and Obra's own context carries the task
 *   on; the call's record says which happened.
 * - After a call, the transcript is handed to the run's next write to its ObraTask object — the journal lines
 *   before the next call, the iteration's record, or the settle — so what Restate holds of the conversation
 *   matches the journal a new worker resumes from: a call the journal does not know of yet is re-issued on the
 *   transcript from before it. The write carries the bytes added since the copy Restate keeps (the CLI's
 *   transcript is append-only), with the mark (length, SHA-256) they go on from: what an iteration sends does
 *   not grow with the conversation. It is sent whole when it does not go on from that copy. The settle points
 *   the session at the run's copy.
 * Transcripts are kept in Restate rather than beside the task's branch: they move with the run and its session
 * in the calls a drive makes anyway, need no push of their own, and never land in the user's repository history.
 */
export class SessionCarrier extends WrappedAgent {
  /** The session this drive holds, and the copy of its transcript that matches the journal when taken. */
  private held: { sessionId: string; saved: SavedTranscript | null; path: string | null } | null = null;
  /** A call's transcript not yet handed to Restate. */
  private unsaved: { sessionId: string; path: string } | null = null;
  /** The last transcript handed to Restate (sent again whole when its delta was refused). */
  private lastHanded: { sessionId: string; path: string } | null = null;
  /** What the run's ObraTask keeps of the transcript: what the next delta goes on from. */
  private kept: { sessionId: string; mark: TranscriptMark } | null;
  /** A take started before the drive's first call (see `takeEarly`), until that call or the settle. */
  private early: { sessionId: string; path: string | null; taken: Promise<AgentCallRecord['session'] | null> } | null = null;

  constructor(
    inner: Agent,
    private readonly options: SessionCarrierOptions,
  ) {
    super(inner);
    const own = options.runTranscript;
    this.kept = own?.sha256 ? { sessionId: own.sessionId, mark: { length: own.length, sha256: own.sha256 } } : null;
  }

  /** The session the drive holds (its settle releases it): call it once `ready()`. */
  get heldSession(): string | null {
    return this.held?.sessionId ?? null;
  }

  /**
   * Takes the run's session now, while the drive makes its first write, instead of after that write, before its
   * first call: one round trip less on a drive's way to its first call. When that call is of another session (or
   * another folder), it is taken then, as without this, and this one let go.
   */
  takeEarly(sessionId: string | null, workdir: string, signal: AbortSignal): void {
    if (!sessionId || this.held || this.early) return;
    const here = this.options.workdirHere?.(workdir) ?? workdir;
    const path = this.inner.sessionFile?.(sessionId, here) ?? null;
    const taken = this.take(sessionId, path, here, signal);
    taken.catch(() => {});
    this.early = { sessionId, path, taken };
  }

  /** Resolves once a take started early has ended (the settle then knows which session the drive holds). */
  async ready(): Promise<void> {
    await this.early?.taken.catch(() => {});
  }

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const sessionId = request.sessionId;
    if (!sessionId) return this.inner.call(request);
    const here = { ...request, workdir: this.options.workdirHere?.(request.workdir) ?? request.workdir };
    const fileOf = (id: string) => this.inner.sessionFile?.(id, here.workdir) ?? null;
    const path = fileOf(sessionId);
    const restored = await this.taken(sessionId, path, here.workdir, request.signal);
    const store = this.inner.sessionStore;
    let call = here;
    let session: AgentCallRecord['session'];
    if (path === null) {
      // Nothing to restore: the CLI's own store holds the session, or says it does not.
    } else if (here.mode === 'resume' && (store ? restored?.restored === false : !existsSync(path))) {
      // Nothing the CLI could resume (no copy anywhere, or its store would not take the copy): a fresh session.
      call = { ...here, mode: 'create' };
      session = restored ?? { restored: false, note: `no transcript of session ${sessionId} on ${this.options.worker} nor in Restate: a fresh session, going on from Obra's own context` };
    } else if (restored) {
      session = restored;
    }
    let answeredAs = sessionId;
    let record: AgentCallRecord;
    try {
      record = await this.inner.call(call);
      // A CLI that names its sessions itself (Codex, opencode) answers a new one under its own id.
      answeredAs = record.sessionId || sessionId;
    } finally {
      const file = answeredAs === sessionId ? path : fileOf(answeredAs);
      this.unsaved = file ? { sessionId: answeredAs, path: file } : null;
    }
    // A call the CLI never ran (its session busy, or not there) left nothing new to write out.
    const ran = record.outcome.kind !== 'sessionBusy' && record.outcome.kind !== 'noConversation';
    if (store && ran && this.unsaved) session = (await this.saveToFile(store, this.unsaved, here.workdir, request.signal)) ?? session;
    return session ? { ...record, session } : record;
  }

  /**
   * A store's session written out to its file after a call, for the run's next write to carry. When that fails,
   * nothing is carried for this call (Restate keeps the copy from before it) and the record says so.
   */
  private async saveToFile(store: SessionStore, unsaved: { sessionId: string; path: string }, workdir: string, signal?: AbortSignal): Promise<AgentCallRecord['session'] | null> {
    try {
      await store.save(unsaved.sessionId, unsaved.path, workdir, signal);
      return null;
    } catch (error) {
      this.unsaved = null;
      return { restored: false, note: `session ${unsaved.sessionId} not carried from ${this.options.worker}: ${(error as Error).message}` };
    }
  }

  /**
   * The last call's transcript, once, for the run's next write to Restate: the bytes added since the copy
   * Restate keeps, or the whole when it does not go on from that copy (null when there is nothing new).
   */
  takeTranscript(): TranscriptWrite | null {
    const unsaved = this.unsaved;
    this.unsaved = null;
    if (!unsaved || !existsSync(unsaved.path)) return null;
    const { sessionId } = unsaved;
    const bytes = readFileSync(unsaved.path);
    const mark = markOf(bytes);
    const kept = this.kept?.sessionId === sessionId ? this.kept.mark : null;
    if (kept && kept.length === mark.length && kept.sha256 === mark.sha256) return null;
    const base = kept && goesOnFrom(bytes, kept) ? kept : null;
    const gzipped = gzipSync(base ? bytes.subarray(base.length) : bytes);
    if (gzipped.length > MAX_SAVED_BYTES) return null;
    this.kept = { sessionId, mark };
    this.lastHanded = unsaved;
    return { sessionId, base, gzipBase64: gzipped.toString('base64'), mark, savedAt: Date.now(), savedBy: this.options.worker };
  }

  /** Restate refused the last delta (it keeps another copy): the next write sends the transcript whole. */
  transcriptRefused(): void {
    this.kept = null;
    this.unsaved ??= this.lastHanded;
  }

  /** The session for the call: as taken early when that was this one, in this folder; else taken now. */
  private async taken(sessionId: string, path: string | null, workdir: string, signal?: AbortSignal): Promise<AgentCallRecord['session'] | null> {
    const early = this.early;
    this.early = null;
    if (early) {
      const result = await early.taken.then((session) => ({ session }), () => null);
      if (result && early.sessionId === sessionId && early.path === path) return result.session;
      // Held for another folder: taken again (the same run and epoch may), and restored where the call runs.
      if (result && early.sessionId === sessionId) this.held = null;
    }
    return this.take(sessionId, path, workdir, signal);
  }

  /**
   * The session for this drive (taken once; another session of the run first lets the last one go). Taking it
   * makes the local transcript the copy that matches the journal; says how when it changed it.
   */
  private async take(sessionId: string, path: string | null, workdir: string, signal?: AbortSignal): Promise<AgentCallRecord['session'] | null> {
    if (this.held?.sessionId === sessionId) {
      this.held.path = path;
      return null;
    }
    if (this.held) await this.release(this.held.sessionId, this.held.path);
    const own = this.options.runTranscript?.sessionId === sessionId ? this.options.runTranscript : null;
    const hold = await this.acquire(sessionId, own?.savedAt, signal);
    const shared = hold.transcript ? await this.whole(hold.transcript) : null;
    const copy = own && (!shared || own.savedAt >= shared.savedAt) ? own : shared;
    this.held = { sessionId, saved: copy, path };
    if (!copy || !path) return null;
    const restored = restoreTranscriptFile(path, copy);
    const store = this.inner.sessionStore;
    if (store) return this.loadIntoStore(store, sessionId, path, workdir, restored, copy, signal);
    if (restored !== 'same') this.inner.adoptSessionFile?.(path, workdir);
    return this.noteOf(restored, copy);
  }

  /**
   * A store's session made the copy that matches the journal. Always loaded, even when the file here is that
   * copy already: the store may have gone on past its last export (a call cut by a crash before its export).
   * When the store will not take it, the call starts a fresh session (`restored: false`).
   */
  private async loadIntoStore(store: SessionStore, sessionId: string, path: string, workdir: string, restored: Restored, copy: SavedTranscript, signal?: AbortSignal): Promise<AgentCallRecord['session']> {
    try {
      await store.load(sessionId, path, workdir, signal);
    } catch (error) {
      signal?.throwIfAborted();
      return { restored: false, note: `session ${sessionId} could not be restored on ${this.options.worker} (${(error as Error).message}): a fresh session, going on from Obra's own context` };
    }
    return this.noteOf(restored, copy) ?? { restored: true, note: `session loaded into ${this.inner.name}'s store on ${this.options.worker} from the copy saved by ${copy.savedBy}` };
  }

  private noteOf(restored: Restored, copy: SavedTranscript): AgentCallRecord['session'] | null {
    const { worker } = this.options;
    if (restored === 'same') return null;
    if (restored === 'restored') return { restored: true, note: `transcript restored on ${worker} (saved by ${copy.savedBy})` };
    if (restored === 'cut') return { restored: true, note: `transcript on ${worker} went on past the journal: cut back to the copy saved by ${copy.savedBy}` };
    return { restored: true, note: `transcript on ${worker} did not match the journal: rewritten from the copy saved by ${copy.savedBy}` };
  }

  /** A session's saved transcript, whole: a reference is read from the run that keeps it (null if it moved on). */
  private async whole(saved: SavedTranscript | TranscriptRef): Promise<SavedTranscript | null> {
    if ('gzipBase64' in saved) return saved;
    const kept = await this.options.client.task<RunTranscript | null>(saved.runId, 'transcript');
    return kept && kept.sessionId === saved.sessionId && kept.sha256 === saved.sha256 ? kept : null;
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

  /** Lets another session of the run go, with its transcript whole (the run's own copy is of the next session). */
  private async release(sessionId: string, path: string | null): Promise<void> {
    const { client, runId, epoch } = this.options;
    if (this.unsaved?.sessionId === sessionId) this.unsaved = null;
    const transcript = path && existsSync(path) ? savedOf(readFileSync(path), this.options.worker) : null;
    await client.session(sessionId, 'release', { runId, epoch, transcript: transcript && transcript.bytes <= MAX_SAVED_BYTES ? transcript : null }).catch(() => {});
  }
}
