import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { AgentCallRequest } from '../../src/agents/agent.js';
import { transcriptPath } from '../../src/agents/claude-code-agent.js';
import { OpencodeAgent } from '../../src/agents/opencode/opencode-agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import type { AgentCallRecord } from '../../src/core/types.js';
import type { RestateClient } from '../../src/hosts/restate/client.js';
import type { SavedTranscript } from '../../src/hosts/restate/model.js';
import { SessionCarrier } from '../../src/hosts/restate/session-carrier.js';
import { markOf, savedOf } from '../../src/hosts/restate/transcript-file.js';

const SESSION = '8f0c6f0e-4d7a-4c55-9d59-000000000001';

/** ObraSession as an object in memory: its holder and its saved transcript, and every call made to it. */
function sessions(saved: SavedTranscript | null) {
  const calls: { handler: string; input: Record<string, unknown> }[] = [];
  let transcript = saved;
  const client = {
    async session(_id: string, handler: string, input: Record<string, unknown>) {
      calls.push({ handler, input });
      if (handler === 'acquire') return { ok: true, transcript };
      if (handler === 'release' && input.transcript) transcript = input.transcript as SavedTranscript;
      return null;
    },
  } as unknown as RestateClient;
  return { client, calls, saved: () => transcript };
}

/** Claude Code's transcript files, as the scripted agent's session files. */
const claudeFiles = (env: NodeJS.ProcessEnv) => ({ sessionFile: (id: string, workdir: string) => transcriptPath(id, workdir, env) });

function request(workdir: string, mode: 'create' | 'resume'): AgentCallRequest {
  return { runId: 'r1', index: 2, attempt: 1, prompt: 'Go on', sessionId: SESSION, mode, workdir, allowedTools: [] };
}

describe('SessionCarrier: a session that may have been used on another worker', () => {
  it('restores the saved transcript where the CLI reads it, then resumes; hands the new one to the run\'s next write', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
    const workdir = join(home, 'work');
    const saved: SavedTranscript = { ...savedOf(Buffer.from('{"turn":1}\n'), 'w1'), savedAt: 1 };
    const restate = sessions(saved);
    const inner = new ScriptedAgent(['Step 2 done.\nSTATUS: CONTINUE', 'Step 3 done.\nSTATUS: CONTINUE'], claudeFiles(env));
    const carrier = new SessionCarrier(inner, { client: restate.client, runId: 'r1', epoch: 2, worker: 'w2' });
    expect(carrier.takeTranscript()).toBeNull();
    const record = await carrier.call(request(workdir, 'resume'));
    expect(record.mode).toBe('resume');
    expect(record.session).toEqual({ restored: true, note: 'transcript restored on w2 (saved by w1)' });
    expect(readFileSync(transcriptPath(SESSION, workdir, env), 'utf8')).toBe('{"turn":1}\n');
    // The session is the drive's until it settles: a second call takes it no more.
    await carrier.call(request(workdir, 'resume'));
    expect(restate.calls.map((c) => c.handler)).toEqual(['acquire']);
    expect(restate.calls[0]!.input).toEqual({ runId: 'r1', epoch: 2, worker: 'w2' });
    expect(carrier.heldSession).toBe(SESSION);
    // The transcript after the last call, once, for the run's next write.
    const handed = carrier.takeTranscript()!;
    expect(handed).toMatchObject({ sessionId: SESSION, savedBy: 'w2', base: null, mark: markOf(Buffer.from('{"turn":1}\n')) });
    expect(gunzipSync(Buffer.from(handed.gzipBase64, 'base64')).toString()).toBe('{"turn":1}\n');
    expect(carrier.takeTranscript()).toBeNull();
  });

  it('after a failover, restores the run\'s own copy when it is newer than the session\'s; another session of the run lets the first go', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
    const workdir = join(home, 'work');
    const restate = sessions({ ...savedOf(Buffer.from('{"turn":1}\n'), 'w1'), savedAt: 10 });
    const runTranscript = { sessionId: SESSION, ...savedOf(Buffer.from('{"turn":1}\n{"turn":2}\n'), 'w3'), savedAt: 20 };
    const carrier = new SessionCarrier(new ScriptedAgent(['Go on.\nSTATUS: CONTINUE', 'New session.\nSTATUS: CONTINUE'], claudeFiles(env)), { client: restate.client, runId: 'r1', epoch: 3, worker: 'w2', runTranscript });
    const record = await carrier.call(request(workdir, 'resume'));
    expect(record.session!.note).toBe('transcript restored on w2 (saved by w3)');
    expect(readFileSync(transcriptPath(SESSION, workdir, env), 'utf8')).toBe('{"turn":1}\n{"turn":2}\n');
    const other = '8f0c6f0e-4d7a-4c55-9d59-000000000002';
    await carrier.call({ ...request(workdir, 'create'), sessionId: other });
    expect(restate.calls.map((c) => `${c.handler}`)).toEqual(['acquire', 'release', 'acquire']);
    expect(restate.saved()!.savedBy).toBe('w2');
    expect(carrier.heldSession).toBe(other);
  });

  it('with no transcript anywhere, starts a fresh session on the same id and the record says so', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
    const restate = sessions(null);
    const inner = new ScriptedAgent(['Step 2 done.\nSTATUS: CONTINUE'], claudeFiles(env));
    const carrier = new SessionCarrier(inner, { client: restate.client, runId: 'r1', epoch: 2, worker: 'w2' });
    const record = await carrier.call(request(join(home, 'work'), 'resume'));
    expect(record.mode).toBe('create');
    expect(record.sessionId).toBe(SESSION);
    expect(record.session).toMatchObject({ restored: false });
    expect(record.session!.note).toMatch(/no transcript of session .* a fresh session, going on from Obra's own context/);
    // Nothing written by the scripted agent: nothing saved either, and the session is released all the same.
    expect(existsSync(transcriptPath(SESSION, join(home, 'work'), env))).toBe(false);
    expect(carrier.takeTranscript()).toBeNull();
    expect(restate.calls.map((c) => c.handler)).toEqual(['acquire']);
  });

  it('maps the folder the machine names to this worker\'s checkout', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const seen: string[] = [];
    const inner = new ScriptedAgent((req) => {
      seen.push(req.workdir);
      return 'Done.\nSTATUS: DONE';
    });
    const carrier = new SessionCarrier(inner, { client: sessions(null).client, runId: 'r1', epoch: 1, worker: 'w1', workdirHere: (dir) => (dir === '/logical/r1' ? join(home, 'checkout') : dir) });
    await carrier.call(request('/logical/r1', 'create'));
    expect(seen).toEqual([join(home, 'checkout')]);
  });

  /** An agent that adds a turn to the CLI's transcript of the session, as the CLI does. */
  const appending = (env: NodeJS.ProcessEnv, turn: string) =>
    new ScriptedAgent((req) => {
      const path = transcriptPath(SESSION, req.workdir, env);
      mkdirSync(dirname(path), { recursive: true });
      appendFileSync(path, turn);
      return 'Step done.\nSTATUS: CONTINUE';
    }, claudeFiles(env));

  it('hands Restate only the bytes a call added, with the mark they go on from: as many for a 2 KB as for a 200 KB transcript', async () => {
    const turn = `${JSON.stringify({ type: 'assistant', text: randomBytes(600).toString('base64') })}\n`;
    const sent: number[] = [];
    for (const size of [2_000, 200_000]) {
      const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
      const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
      // Incompressible, as a real conversation's tool output nearly is.
      const before = Buffer.from(`${randomBytes((size * 3) / 4).toString('base64')}\n`);
      const runTranscript = { sessionId: SESSION, ...savedOf(before, 'w1') };
      const carrier = new SessionCarrier(appending(env, turn), { client: sessions(null).client, runId: 'r1', epoch: 2, worker: 'w2', runTranscript });
      await carrier.call(request(join(home, 'work'), 'resume'));
      const handed = carrier.takeTranscript()!;
      expect(handed.base).toEqual(markOf(before));
      expect(handed.mark).toEqual(markOf(Buffer.concat([before, Buffer.from(turn)])));
      expect(gunzipSync(Buffer.from(handed.gzipBase64, 'base64')).toString()).toBe(turn);
      sent.push(JSON.stringify(handed).length);
    }
    expect(sent[0]).toBeLessThan(2_000);
    expect(Math.abs(sent[1]! - sent[0]!)).toBeLessThan(50);
  });

  it('sends the transcript whole when it does not go on from Restate\'s copy, and after Restate refused a delta', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
    const workdir = join(home, 'work');
    const runTranscript = { sessionId: SESSION, ...savedOf(Buffer.from('{"turn":1}\n'), 'w1') };
    const carrier = new SessionCarrier(appending(env, '{"turn":2}\n'), { client: sessions(null).client, runId: 'r1', epoch: 2, worker: 'w2', runTranscript });
    await carrier.call(request(workdir, 'resume'));
    expect(carrier.takeTranscript()!.base).toEqual(markOf(Buffer.from('{"turn":1}\n')));
    carrier.transcriptRefused();
    const whole = carrier.takeTranscript()!;
    expect(whole.base).toBeNull();
    expect(gunzipSync(Buffer.from(whole.gzipBase64, 'base64')).toString()).toBe('{"turn":1}\n{"turn":2}\n');
    // Rewritten by someone else between two calls: the next write is whole too.
    await carrier.call(request(workdir, 'resume'));
    writeFileSync(transcriptPath(SESSION, workdir, env), '{"other":1}\n');
    const rewritten = carrier.takeTranscript()!;
    expect(rewritten.base).toBeNull();
    expect(rewritten.mark).toEqual(markOf(Buffer.from('{"other":1}\n')));
    expect(carrier.takeTranscript()).toBeNull();
  });

  it('makes the local transcript the copy that matches the journal, never a newer local file', async () => {
    const copy = Buffer.from('{"turn":1}\n{"turn":2}\n');
    const cases = [
      // A call the journal does not know of answered into the local file (its answer lost with the server).
      { local: '{"turn":1}\n{"turn":2}\n{"lost":3}\n', note: 'transcript on w2 went on past the journal: cut back to the copy saved by w1' },
      { local: '{"another":1}\n', note: 'transcript on w2 did not match the journal: rewritten from the copy saved by w1' },
      { local: copy.toString(), note: undefined },
    ];
    for (const { local, note } of cases) {
      const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
      const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
      const workdir = join(home, 'work');
      const path = transcriptPath(SESSION, workdir, env);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, local);
      const seen: string[] = [];
      const inner = new ScriptedAgent(() => {
        seen.push(readFileSync(path, 'utf8'));
        return 'Step 3 done.\nSTATUS: CONTINUE';
      }, claudeFiles(env));
      const carrier = new SessionCarrier(inner, { client: sessions(null).client, runId: 'r1', epoch: 2, worker: 'w2', runTranscript: { sessionId: SESSION, ...savedOf(copy, 'w1') } });
      const record = await carrier.call(request(workdir, 'resume'));
      expect(seen).toEqual([copy.toString()]);
      expect(record.session?.note).toBe(note);
    }
  });

  it('reads the transcript a session points at from the run that keeps it', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
    const kept = { sessionId: SESSION, ...savedOf(Buffer.from('{"turn":1}\n'), 'w1') };
    const restate = sessions(null);
    const client = { ...restate.client, session: async () => ({ ok: true, transcript: { runId: 'r0', sessionId: SESSION, length: kept.length, sha256: kept.sha256, savedAt: kept.savedAt, savedBy: 'w1' } }), task: async (runId: string, handler: string) => (runId === 'r0' && handler === 'transcript' ? kept : null) } as unknown as RestateClient;
    const carrier = new SessionCarrier(new ScriptedAgent(['Go on.\nSTATUS: CONTINUE'], claudeFiles(env)), { client, runId: 'r1', epoch: 1, worker: 'w2' });
    const record = await carrier.call(request(join(home, 'work'), 'resume'));
    expect(record.session?.note).toBe('transcript restored on w2 (saved by w1)');
    expect(readFileSync(transcriptPath(SESSION, join(home, 'work'), env), 'utf8')).toBe('{"turn":1}\n');
  });
});

describe('SessionCarrier: a CLI whose sessions live in a store of its own (opencode: SQLite), carried as its export', () => {
  const FAKE_OPENCODE = join(import.meta.dirname, '../../fixtures/fake-opencode');
  const opencodeOn = (home: string) => new OpencodeAgent({ command: FAKE_OPENCODE, timeoutMs: 20_000, killGraceMs: 300, locks: new SessionLocks(join(home, 'locks')), env: { HOME: home, FAKE_OPENCODE_REPLIES: JSON.stringify(['On turn {{turn}}.\nSTATUS: CONTINUE']) } });
  const turnOf = (record: AgentCallRecord) => (record.outcome.kind === 'answer' ? record.outcome.result.result : record.outcome.kind);

  it('a worker that takes the run on drops the turn of a call the journal never heard of: the store is loaded from the run\'s copy, replacing what it had', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const workdir = join(home, 'work');
    mkdirSync(workdir);
    const restate = sessions(null);
    const first = new SessionCarrier(opencodeOn(home), { client: restate.client, runId: 'r1', epoch: 1, worker: 'w1' });
    const one = await first.call({ ...request(workdir, 'create'), sessionId: SESSION });
    expect(turnOf(one)).toBe('On turn 1.\nSTATUS: CONTINUE');
    const handed = first.takeTranscript()!;
    expect(handed.sessionId).toBe(one.sessionId);
    // The next call reached opencode, then its worker died before the journal heard of it (nor was it exported).
    const cut = await opencodeOn(home).call({ ...request(workdir, 'resume'), sessionId: one.sessionId });
    expect(turnOf(cut)).toBe('On turn 2.\nSTATUS: CONTINUE');
    // The same machine takes the run on: its export file is still the copy Restate keeps, its database is not.
    const runTranscript = { sessionId: handed.sessionId, gzipBase64: handed.gzipBase64, ...handed.mark, bytes: Buffer.byteLength(handed.gzipBase64, 'base64'), savedAt: handed.savedAt, savedBy: handed.savedBy };
    const again = new SessionCarrier(opencodeOn(home), { client: restate.client, runId: 'r1', epoch: 2, worker: 'w1', runTranscript });
    const two = await again.call({ ...request(workdir, 'resume'), sessionId: one.sessionId });
    expect(turnOf(two)).toBe('On turn 2.\nSTATUS: CONTINUE');
    expect(two.session).toEqual({ restored: true, note: `session loaded into opencode's store on w1 from the copy saved by w1` });
    // What the next write carries is the store's session after this call: three turns would mean the cut one stayed.
    const exported = JSON.parse(gunzipSync(Buffer.from(again.takeTranscript()!.gzipBase64, 'base64')).toString()) as { messages: { info: { role: string }; parts: { text: string }[] }[] };
    expect(exported.messages.map((m) => `${m.info.role}: ${m.parts[0]!.text}`)).toEqual(['user: Go on', 'assistant: On turn 1.\nSTATUS: CONTINUE', 'user: Go on', 'assistant: On turn 2.\nSTATUS: CONTINUE']);
  });

  it('a store that will not take the copy: the call starts a fresh session and says why; a failed export carries nothing and says so', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const workdir = join(home, 'work');
    const file = (id: string) => join(home, 'store', `${id}.json`);
    const loads: string[] = [];
    const inner = Object.assign(new ScriptedAgent(['Fresh.\nSTATUS: CONTINUE', 'Again.\nSTATUS: CONTINUE']), {
      sessionFile: file,
      sessionStore: {
        async save(id: string) {
          throw new Error(`export of ${id} failed: exit 1`);
        },
        async load(id: string, path: string) {
          loads.push(`${id} ${readFileSync(path, 'utf8')}`);
          throw new Error('import failed: exit 1: Unexpected error');
        },
      },
    });
    const saved: SavedTranscript = { ...savedOf(Buffer.from('{"messages":1}'), 'w1'), savedAt: 1 };
    const carrier = new SessionCarrier(inner, { client: sessions(saved).client, runId: 'r1', epoch: 2, worker: 'w2' });
    const record = await carrier.call(request(workdir, 'resume'));
    expect(loads).toEqual([`${SESSION} {"messages":1}`]);
    expect(record.mode).toBe('create');
    // The export after the call failed too: that is what the record says last, and nothing is handed to Restate.
    expect(record.session).toEqual({ restored: false, note: `session ${SESSION} not carried from w2: export of ${SESSION} failed: exit 1` });
    expect(carrier.takeTranscript()).toBeNull();
  });
});
