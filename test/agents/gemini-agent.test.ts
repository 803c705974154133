import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { approvalFor, GeminiAgent, type GeminiAgentOptions } from '../../src/agents/gemini/gemini-agent.js';
import { classifyGemini } from '../../src/agents/gemini/gemini-classify.js';
import { readGeminiTurn } from '../../src/agents/gemini/gemini-stream.js';
import { cliSamples, fakeCliWorld, raw } from './cli-world.js';
import { isAlive, ROOT, until } from './fake-env.js';

const FAKE_GEMINI = join(ROOT, 'fixtures/fake-gemini');
const { sample, timed } = cliSamples('gemini');
const outcomeOf = (call: { stdout: string; stderr: string; exitCode: number | null }) => classifyGemini(raw(call), readGeminiTurn(call.stdout));

describe('the real Gemini CLI 0.61.0 samples', () => {
  it('a plain answer: the session id, the deltas joined, every model\'s tokens', () => {
    const turn = readGeminiTurn(sample('plain.jsonl'));
    expect(turn).toMatchObject({ sessionId: '31d2ef4d-67c7-4599-bf56-0ea6a8c58932', answer: 'Mock answer: the task is handled.\nSTATUS: DONE', filesChanged: [], refused: [] });
    expect(turn.result).toMatchObject({ status: 'success', inputTokens: 203, outputTokens: 24, cachedTokens: 0 });
    expect(outcomeOf({ stdout: sample('plain.jsonl'), stderr: '', exitCode: 0 })).toEqual({ kind: 'answer', apiStatus: null });
  });

  it('a write: the path; under `default` the tool is not registered — a refusal, the run goes on, exit 0', () => {
    expect(readGeminiTurn(sample('resume-turn3-write.jsonl')).filesChanged).toEqual(['resumed.txt']);
    expect(readGeminiTurn(sample('write-auto-edit.jsonl')).filesChanged).toEqual(['autoedit.txt']);
    const refused = readGeminiTurn(sample('write-refused-default.jsonl'));
    expect(refused.filesChanged).toEqual([]);
    expect(refused.refused).toEqual([{ tool: 'write_file', input: 'denied.txt', why: 'Tool "write_file" not found. Did you mean one of: "read_file", "update_topic", "grep_search"?' }]);
  });

  it('exit codes: 173 is 429, a daily quota is a usage limit, 244 an API error answer, 42 the session errors, 55 an untrusted folder', () => {
    expect(outcomeOf(timed('429-exhausted.timed.jsonl'))).toMatchObject({ kind: 'rateLimited', status: 429 });
    expect(outcomeOf(timed('429-daily-quota.timed.jsonl'))).toMatchObject({ kind: 'usageLimit', limitType: 'daily', resetsAt: null, message: expect.stringMatching(/^\[API Error: You have exhausted your daily quota/) });
    expect(outcomeOf(timed('500-exhausted.timed.jsonl'))).toEqual({ kind: 'answer', apiStatus: 500 });
    expect(outcomeOf(timed('session-id-reused.timed.jsonl'))).toEqual({ kind: 'sessionBusy', message: 'Error starting session: Session ID "e359cb8b-397c-428a-8e40-4fe070663f22" already exists. Use --resume to resume it, or provide a different ID.' });
    expect(outcomeOf(timed('resume-unknown-id.timed.jsonl'))).toMatchObject({ kind: 'noConversation', message: 'Error resuming session: Invalid session identifier "11111111-2222-3333-4444-555555555555".' });
    expect(outcomeOf(timed('resume-other-directory.timed.jsonl'))).toMatchObject({ kind: 'noConversation' });
    expect(outcomeOf(timed('untrusted-folder.timed.jsonl'))).toMatchObject({ kind: 'fatal', message: expect.stringMatching(/^gemini refused to run in an untrusted folder: Gemini CLI is not running in a trusted directory/) });
  });

  it('a hang and a stall print nothing for minutes: the idle watchdog\'s silence is a stall', () => {
    for (const name of ['hang-no-headers.timed.jsonl', 'stall.timed.jsonl']) {
      const call = timed(name);
      expect(readGeminiTurn(call.stdout).result).toBeNull();
      expect(classifyGemini(raw({ ...call, exitCode: null, stoppedBy: 'idle', idleMs: 300_000 }), readGeminiTurn(call.stdout))).toMatchObject({ kind: 'stalled', idleMs: 300_000 });
    }
  });

  it('a grant widens the approval mode: Write lifts default to auto_edit, Bash lifts it to yolo', () => {
    expect(approvalFor('default', ['Bash(npm test)'])).toBe('default');
    expect(approvalFor('default', ['Write'])).toBe('auto_edit');
    expect(approvalFor('auto_edit', ['Bash'])).toBe('yolo');
  });
});

function world(replies: unknown[], options: Partial<GeminiAgentOptions> = {}) {
  const w = fakeCliWorld('gemini', '6f1c0000-0000-4000-8000-000000000001');
  const agent = new GeminiAgent({ command: FAKE_GEMINI, timeoutMs: 20_000, killGraceMs: 300, locks: w.locks, env: { HOME: w.root, FAKE_GEMINI_REPLIES: JSON.stringify(replies), FAKE_GEMINI_LOG: w.log }, ...options });
  return { ...w, agent };
}

describe('GeminiAgent, driving fixtures/fake-gemini', () => {
  it('names the session up front, resumes it with -r; writes under auto_edit; per-call tokens with an estimated cost', async () => {
    const w = world(['First.\nSTATUS: CONTINUE', { files: { 'hello.txt': 'hi' }, text: 'Wrote it.\nSTATUS: DONE' }], { price: { input: 1, output: 4 } });
    const first = await w.agent.call(w.request());
    expect(first.sessionId).toBe('6f1c0000-0000-4000-8000-000000000001');
    expect(first.argv.slice(1)).toEqual(['-p', '<prompt: 12 characters>', '-o', 'stream-json', '--skip-trust', '--approval-mode', 'auto_edit', '--session-id', '6f1c0000-0000-4000-8000-000000000001']);
    expect(first.outcome).toMatchObject({ kind: 'answer', result: { result: 'First.\nSTATUS: CONTINUE', is_error: false } });
    const second = await w.agent.call(w.request({ mode: 'resume', prompt: 'Write hello.txt.' }));
    expect(second.argv.slice(-2)).toEqual(['-r', '6f1c0000-0000-4000-8000-000000000001']);
    expect(readFileSync(join(w.workdir, 'hello.txt'), 'utf8')).toBe('hi\n');
    expect(first.work).toEqual({ toolCalls: 0, filesChanged: [] });
    expect(second.work).toMatchObject({ toolCalls: 1, filesChanged: [expect.stringMatching(/hello\.txt$/)] });
    expect(second.tokens).toMatchObject({ costSource: 'estimate' });
    expect(second.tokens!.costUsd).toBeCloseTo((second.tokens!.inputTokens + second.tokens!.outputTokens * 4) / 1e6, 12);
  });

  it('creating a session that exists is the CLI\'s "busy" that the iteration turns into a resume', async () => {
    const w = world(['One.', 'Two.']);
    await w.agent.call(w.request());
    const again = await w.agent.call(w.request());
    expect(again.outcome).toEqual({ kind: 'sessionBusy', message: 'Error starting session: Session ID "6f1c0000-0000-4000-8000-000000000001" already exists. Use --resume to resume it, or provide a different ID.' });
  });

  it('under `default` a write is refused and recorded for a human; 429 and 500 end as Claude\'s would', async () => {
    const w = world([{ files: { 'a.txt': 'x' }, text: 'Tried.\nSTATUS: DONE' }, { error: 429 }, { error: 500 }], { approvalMode: 'default' });
    const refused = await w.agent.call(w.request());
    expect(refused.permissionDenials).toEqual([{ tool: 'write_file', input: 'a.txt', rule: 'Write' }]);
    expect(existsSync(join(w.workdir, 'a.txt'))).toBe(false);
    const limited = await w.agent.call(w.request({ mode: 'resume' }));
    expect([limited.exitCode, limited.outcome.kind]).toEqual([173, 'rateLimited']);
    const failed = await w.agent.call(w.request({ mode: 'resume' }));
    expect(failed.exitCode).toBe(244);
    expect(failed.outcome).toMatchObject({ kind: 'answer', result: { is_error: true, api_error_status: 500 } });
  });

  it('a hung API: the watchdog kills the process group; a stalled call', async () => {
    const w = world([{ hang: true }], { idleTimeoutMs: 600 });
    const record = await w.agent.call(w.request());
    expect(record.outcome.kind).toBe('stalled');
    const pid = w.calls().find((c) => c.outcome === 'hang')!.pid;
    await until(() => !isAlive(pid), 5_000, 'the hung fake to be gone');
  });
});
