import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { AgentCallRequest } from '../../src/agents/agent.js';
import { transcriptPath } from '../../src/agents/claude-code-agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import type { RestateClient } from '../../src/hosts/restate/client.js';
import type { SavedTranscript } from '../../src/hosts/restate/model.js';
import { SessionCarrier } from '../../src/hosts/restate/session-carrier.js';

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

function request(workdir: string, mode: 'create' | 'resume'): AgentCallRequest {
  return { runId: 'r1', index: 2, attempt: 1, prompt: 'Go on', sessionId: SESSION, mode, workdir, allowedTools: [] };
}

describe('SessionCarrier: a session that may have been used on another worker', () => {
  it('restores the saved transcript where the CLI reads it, then resumes; hands the new one to the run\'s next write', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
    const workdir = join(home, 'work');
    const saved: SavedTranscript = { gzipBase64: gzipSync('{"turn":1}\n').toString('base64'), bytes: 30, savedAt: 1, savedBy: 'w1' };
    const restate = sessions(saved);
    const inner = new ScriptedAgent(['Step 2 done.\nSTATUS: CONTINUE', 'Step 3 done.\nSTATUS: CONTINUE']);
    const carrier = new SessionCarrier(inner, { client: restate.client, runId: 'r1', epoch: 2, worker: 'w2', env });
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
    expect(handed).toMatchObject({ sessionId: SESSION, savedBy: 'w2' });
    expect(gunzipSync(Buffer.from(handed.gzipBase64, 'base64')).toString()).toBe('{"turn":1}\n');
    expect(carrier.takeTranscript()).toBeNull();
  });

  it('after a failover, restores the run\'s own copy when it is newer than the session\'s; another session of the run lets the first go', async () => {
    const home = mkdtempSync(join(tmpdir(), 'obra-carrier-'));
    const env = { CLAUDE_CONFIG_DIR: join(home, '.claude') };
    const workdir = join(home, 'work');
    const gz = (text: string) => gzipSync(text).toString('base64');
    const restate = sessions({ gzipBase64: gz('{"turn":1}\n'), bytes: 30, savedAt: 10, savedBy: 'w1' });
    const runTranscript = { sessionId: SESSION, gzipBase64: gz('{"turn":1}\n{"turn":2}\n'), bytes: 40, savedAt: 20, savedBy: 'w3' };
    const carrier = new SessionCarrier(new ScriptedAgent(['Go on.\nSTATUS: CONTINUE', 'New session.\nSTATUS: CONTINUE']), { client: restate.client, runId: 'r1', epoch: 3, worker: 'w2', env, runTranscript });
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
    const inner = new ScriptedAgent(['Step 2 done.\nSTATUS: CONTINUE']);
    const carrier = new SessionCarrier(inner, { client: restate.client, runId: 'r1', epoch: 2, worker: 'w2', env });
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
    const carrier = new SessionCarrier(inner, { client: sessions(null).client, runId: 'r1', epoch: 1, worker: 'w1', env: { CLAUDE_CONFIG_DIR: home }, workdirHere: (dir) => (dir === '/logical/r1' ? join(home, 'checkout') : dir) });
    await carrier.call(request('/logical/r1', 'create'));
    expect(seen).toEqual([join(home, 'checkout')]);
  });
});
