import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseClaudeOutput } from '../../src/agents/claude-result.js';
import { QwenAgent, qwenApprovalFor, type QwenAgentOptions } from '../../src/agents/qwen/qwen-agent.js';
import { classifyQwen } from '../../src/agents/qwen/qwen-classify.js';
import { cliSamples, fakeCliWorld, raw } from './cli-world.js';
import { isAlive, ROOT, until } from './fake-env.js';

const FAKE_QWEN = join(ROOT, 'fixtures/fake-qwen');
const { sample, timed } = cliSamples('qwen');
const outcomeOf = (call: { stdout: string; stderr: string; exitCode: number | null }) => classifyQwen(raw(call), parseClaudeOutput(call.stdout).result);

describe('the real Qwen Code 0.15.10 samples (Claude Code\'s stream shape)', () => {
  it('a plain answer and a refused write read like Claude\'s', () => {
    expect(outcomeOf({ stdout: sample('plain.jsonl'), stderr: '', exitCode: 0 })).toEqual({ kind: 'answer', apiStatus: null, apiError: false });
    const refused = parseClaudeOutput(sample('write-refused-default.jsonl')).result!;
    expect(refused.permission_denials).toEqual([{ tool_name: 'write_file', tool_use_id: 'call_mock_1', tool_input: { file_path: '<cwd>/denied.txt', content: 'written by the mock (denied.txt)\n' } }]);
  });

  it('an API error is the answer\'s text with exit 0: read from the text, not the exit code', () => {
    const call = timed('500-exhausted.timed.jsonl');
    expect(call.exitCode).toBe(0);
    expect(outcomeOf(call)).toEqual({ kind: 'answer', apiStatus: 500, apiError: true });
    expect(outcomeOf(timed('hang-timeout-10s.timed.jsonl'))).toEqual({ kind: 'answer', apiStatus: null, apiError: true });
  });

  it('the session errors: in use on create, unknown or from another folder on resume', () => {
    expect(outcomeOf(timed('session-id-reused.timed.jsonl'))).toEqual({ kind: 'sessionBusy', message: 'Error: Session Id 40d6f4b3-fc33-4dab-8e1d-0fe275dded97 is already in use.' });
    expect(outcomeOf(timed('resume-unknown-id.timed.jsonl'))).toMatchObject({ kind: 'noConversation' });
    expect(outcomeOf(timed('resume-other-directory.timed.jsonl'))).toMatchObject({ kind: 'noConversation' });
  });

  it('a 429 retried for minutes in silence: the idle watchdog\'s stall', () => {
    expect(classifyQwen(raw({ stoppedBy: 'idle', idleMs: 300_000, exitCode: null }), null)).toMatchObject({ kind: 'stalled', idleMs: 300_000 });
    expect(qwenApprovalFor('default', ['Write'])).toBe('auto-edit');
    expect(qwenApprovalFor('auto-edit', ['Bash'])).toBe('yolo');
  });
});

function world(replies: unknown[], options: Partial<QwenAgentOptions> = {}) {
  const w = fakeCliWorld('qwen', '6f1c0000-0000-4000-8000-000000000002');
  const agent = new QwenAgent({ command: FAKE_QWEN, timeoutMs: 20_000, killGraceMs: 300, locks: w.locks, env: { HOME: w.root, FAKE_QWEN_REPLIES: JSON.stringify(replies), FAKE_QWEN_LOG: w.log }, ...options });
  return { ...w, agent };
}

describe('QwenAgent, driving fixtures/fake-qwen', () => {
  it('names the session, resumes it with -r, writes under auto-edit; an API error text is an is_error answer; a refusal is recorded', async () => {
    const w = world(['First.\nSTATUS: CONTINUE', { files: { 'hello.txt': 'hi' }, shell: ['touch nope.txt'], text: 'Wrote it.\nSTATUS: DONE' }, { error: 500 }, { error: 429 }], { price: { input: 1, output: 1 }, idleTimeoutMs: 1_500 });
    const first = await w.agent.call(w.request());
    expect(first.argv.slice(1)).toEqual(['-p', '<prompt: 12 characters>', '-o', 'stream-json', '--approval-mode', 'auto-edit', '--session-id', '6f1c0000-0000-4000-8000-000000000002']);
    expect(first.outcome).toMatchObject({ kind: 'answer', result: { result: 'First.\nSTATUS: CONTINUE', is_error: false } });
    const second = await w.agent.call(w.request({ mode: 'resume' }));
    expect(second.argv.slice(-2)).toEqual(['-r', '6f1c0000-0000-4000-8000-000000000002']);
    expect(readFileSync(join(w.workdir, 'hello.txt'), 'utf8')).toBe('hi\n');
    expect(existsSync(join(w.workdir, 'nope.txt'))).toBe(false);
    expect(second.permissionDenials).toEqual([{ tool: 'run_shell_command', input: 'touch nope.txt', rule: 'Bash' }]);
    expect(second.tokens).toMatchObject({ costSource: 'estimate' });
    const failed = await w.agent.call(w.request({ mode: 'resume' }));
    expect([failed.exitCode, failed.outcome.kind === 'answer' && failed.outcome.result.is_error, failed.outcome.kind === 'answer' && failed.outcome.result.api_error_status]).toEqual([0, true, 500]);
    // A 429 is retried in silence without end: the watchdog's stall.
    expect((await w.agent.call(w.request({ mode: 'resume' }))).outcome).toMatchObject({ kind: 'stalled' });
  });

  it('a hung API: the process group is killed, the call is stalled', async () => {
    const w = world([{ hang: true }], { idleTimeoutMs: 600 });
    expect((await w.agent.call(w.request())).outcome.kind).toBe('stalled');
    const pid = w.calls().find((c) => c.outcome === 'hang')!.pid;
    await until(() => !isAlive(pid), 5_000, 'the hung fake to be gone');
  });
});
