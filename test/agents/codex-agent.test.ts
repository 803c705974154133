import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CodexAgent, type CodexAgentOptions } from '../../src/agents/codex/codex-agent.js';
import { classifyCodex, resetOf } from '../../src/agents/codex/codex-classify.js';
import { readCodexTurn } from '../../src/agents/codex/codex-stream.js';
import { refusalsOf, sandboxFor } from '../../src/agents/codex/refusals.js';
import { deltaOf } from '../../src/agents/codex/thread-usage.js';
import { cliSamples, fakeCliWorld, raw } from './cli-world.js';
import { isAlive, ROOT, until } from './fake-env.js';

const FAKE_CODEX = join(ROOT, 'fixtures/fake-codex');
const { dir: SAMPLES, sample, timed } = cliSamples('codex');
const outcomeOf = (call: { stdout: string; stderr: string; exitCode: number | null }) => classifyCodex(raw(call), readCodexTurn(call.stdout), Date.now());

describe('the real Codex 0.171.0 samples', () => {
  it('a plain answer: the thread id, the last agent message, the usage', () => {
    const turn = readCodexTurn(sample('plain.jsonl'));
    expect(turn).toMatchObject({ threadId: '01a25193-45e7-73b0-9860-94217cf14998', answer: 'Mock answer: the task is handled.\nSTATUS: DONE', failure: null });
    expect(turn.usage).toEqual({ input_tokens: 1007, cached_input_tokens: 0, output_tokens: 12 });
    expect(outcomeOf({ stdout: sample('plain.jsonl'), stderr: '', exitCode: 0 })).toEqual({ kind: 'answer' });
  });

  it('a resumed thread reports running totals: each call gets its own share', () => {
    const totals = ['resume-turn1.jsonl', 'resume-turn2.jsonl', 'resume-turn3-write.jsonl'].map((f) => readCodexTurn(sample(f)));
    expect(new Set(totals.map((t) => t.threadId)).size).toBe(1);
    const shares = totals.map((t, i) => deltaOf(t.usage!, i ? totals[i - 1]!.usage : null));
    expect(shares.map((s) => [s.input_tokens, s.output_tokens])).toEqual([[1007, 12], [1009, 12], [2028, 24]]);
    expect(totals[2]!.filesChanged).toEqual(['<cwd>/resumed.txt']);
  });

  it('429 after the CLI\'s own five reconnects: rate limited', () => {
    const call = timed('429-exhausted.timed.jsonl');
    expect(call.exitCode).toBe(1);
    expect(outcomeOf(call)).toEqual({ kind: 'rateLimited', status: 429, message: 'exceeded retry limit, last status: 429 Too Many Requests, request id: req_mock_6' });
    expect(readCodexTurn(call.stdout).reconnects).toBe(5);
    expect(outcomeOf({ stdout: sample('429-retries-off.jsonl'), stderr: '', exitCode: 1 })).toMatchObject({ kind: 'rateLimited', status: 429 });
  });

  it('a 5xx after the retries ("high demand") is an API error answer for the validator, as Claude\'s', () => {
    const call = timed('500-exhausted.timed.jsonl');
    expect(outcomeOf(call)).toEqual({ kind: 'answer' });
    expect(readCodexTurn(call.stdout).failure).toBe('We’re currently experiencing high demand, which may cause temporary errors.');
  });

  it('401, a stalled stream, a busy thread and an unknown thread', () => {
    expect(outcomeOf({ stdout: sample('401-unauthorized.jsonl'), stderr: '', exitCode: 1 })).toEqual({
      kind: 'fatal',
      message: 'the agent cannot reach the API: unexpected status 401 Unauthorized: forced 401, url: http://127.0.0.1:<port>/v1/responses',
    });
    expect(outcomeOf(timed('stall-idle-timeout-5s.timed.jsonl'))).toMatchObject({ kind: 'stalled' });
    expect(outcomeOf(timed('concurrent-resume-refused.timed.jsonl'))).toEqual({
      kind: 'sessionBusy',
      message: 'failed to initialize thread persistence: thread-store conflict: thread 01a25193-f0bf-71c2-80be-64195f038b25 already has an active writer',
    });
    expect(outcomeOf(timed('resume-unknown-id.timed.jsonl'))).toEqual({
      kind: 'noConversation',
      message: 'Error: thread/resume: thread/resume failed: no rollout found for thread id 01a25199-0000-7000-8000-000000000000 (code -32600)',
    });
  });

  it('a hang prints nothing after turn.started: the watchdog\'s silence is a stall, a killed call without it a crash', () => {
    const call = timed('hang-no-headers.timed.jsonl');
    expect(classifyCodex(raw({ ...call, stoppedBy: 'idle', idleMs: 5000 }), readCodexTurn(call.stdout), 0)).toMatchObject({ kind: 'stalled', idleMs: 5000 });
    expect(classifyCodex(raw({ ...call, exitCode: null, signal: 'SIGTERM' }), readCodexTurn(call.stdout), 0)).toMatchObject({ kind: 'crashed' });
  });

  it('a refused write is in the stream neither under read-only nor outside the project: the rollout tells it', () => {
    for (const name of ['write-refused-readonly.jsonl', 'write-refused-readonly-patch.jsonl', 'write-refused-outside-workspace.jsonl']) {
      const turn = readCodexTurn(sample(name));
      expect(turn.filesChanged).toEqual([]);
      expect(outcomeOf({ stdout: sample(name), stderr: '', exitCode: 0 })).toEqual({ kind: 'answer' });
    }
    const readOnly = join(SAMPLES, 'write-refused-readonly-patch.rollout.jsonl');
    expect(refusalsOf(readCodexTurn(sample('write-refused-readonly-patch.jsonl')), readOnly, 0, 'read-only')).toEqual([{ tool: 'apply_patch', input: 'denied.txt', rule: 'Write' }]);
    const outside = join(SAMPLES, 'write-refused-outside-workspace.rollout.jsonl');
    expect(refusalsOf(readCodexTurn(sample('write-refused-outside-workspace.jsonl')), outside, 0, 'workspace-write')).toEqual([
      { tool: 'apply_patch', input: '../outside.txt', rule: 'Sandbox(danger-full-access)' },
    ]);
    // Only what the rollout gained during this call counts.
    expect(refusalsOf(readCodexTurn(''), outside, readFileSync(outside).length, 'workspace-write')).toEqual([]);
    // Without the rollout, Codex's log line on stderr.
    const stderr = sample('write-refused-readonly-patch.stderr.jsonl').trim().split('\n').map((l) => (JSON.parse(l) as { stderr?: string }).stderr ?? '').join('\n');
    expect(refusalsOf(readCodexTurn(''), null, 0, 'read-only', stderr)).toEqual([{ tool: 'apply_patch', input: 'a file edit (writing is blocked by read-only sandbox; rejected by user approval settings)', rule: 'Write' }]);
    // A shell write the sandbox stopped, when the stream shows it.
    expect(refusalsOf(readCodexTurn(sample('write-refused-readonly-shell.jsonl')), null, 0, 'read-only')).toEqual([
      { tool: 'shell', input: `/bin/bash -lc "printf '%s\\\\n' 'written by the mock (denied2.txt)' > 'denied2.txt'"`, rule: 'Write' },
    ]);
  });

  it('what a person grants widens the sandbox: Write lifts read-only, Sandbox(danger-full-access) lifts it all', () => {
    expect(sandboxFor('read-only', ['Bash(npm test)'])).toBe('read-only');
    expect(sandboxFor('read-only', ['Write'])).toBe('workspace-write');
    expect(sandboxFor('workspace-write', ['Write'])).toBe('workspace-write');
    expect(sandboxFor('workspace-write', ['Sandbox(danger-full-access)'])).toBe('danger-full-access');
  });

  it('a usage limit\'s "try again in" becomes its reset time', () => {
    expect(resetOf("You've hit your usage limit. Try again in 2 hours 5 minutes.", 1_000)).toBe(1_000 + 7_500_000);
    expect(resetOf('no delay named', 1_000)).toBeNull();
  });
});

function world(replies: unknown[], options: Partial<CodexAgentOptions> = {}) {
  const w = fakeCliWorld('codex', null);
  const home = join(w.root, 'codex-home');
  mkdirSync(home);
  const agent = new CodexAgent({
    command: FAKE_CODEX,
    timeoutMs: 20_000,
    home,
    env: { FAKE_CODEX_REPLIES: JSON.stringify(replies), FAKE_CODEX_LOG: w.log },
    locks: w.locks,
    killGraceMs: 300,
    ...options,
  });
  const calls = () => w.calls<{ argv: string[]; outcome: string; pid: number }>();
  return { ...w, home, agent, calls };
}

describe('CodexAgent, driving fixtures/fake-codex', () => {
  it('creates a thread with the prompt on stdin, then resumes it: one session, each call its own tokens and an estimated cost', async () => {
    const w = world(['First.\nSTATUS: CONTINUE', { files: { 'hello.txt': 'hi' }, text: 'Wrote it.\nSTATUS: DONE' }], { price: { input: 2, output: 10 } });
    const first = await w.agent.call(w.request({ sessionId: '6f1c0000-0000-4000-8000-000000000000' }));
    expect(first.outcome).toMatchObject({ kind: 'answer', result: { result: 'First.\nSTATUS: CONTINUE', is_error: false } });
    // Codex picks the thread id: the record carries it, not the one Obra proposed.
    expect(first.sessionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(first.argv.slice(1)).toEqual(['exec', '--json', '--skip-git-repo-check', '-s', 'workspace-write', '-c', 'sandbox_workspace_write.exclude_tmpdir_env_var=true', '-c', 'sandbox_workspace_write.exclude_slash_tmp=true', '-']);

    const second = await w.agent.call(w.request({ sessionId: first.sessionId, mode: 'resume', prompt: 'Now write hello.txt.' }));
    expect(second.sessionId).toBe(first.sessionId);
    expect(second.argv.slice(-3)).toEqual(['resume', first.sessionId, '-']);
    expect(readFileSync(join(w.workdir, 'hello.txt'), 'utf8')).toBe('hi\n');
    // What it did, in the record's own terms (the quality score reads these, not Claude's stream shape).
    expect(first.work).toEqual({ toolCalls: 0, filesChanged: [] });
    expect(second.work).toEqual({ toolCalls: 1, filesChanged: [join(w.workdir, 'hello.txt')] });
    const total = readCodexTurn(second.stdout).usage!;
    // The second call's share is its total minus the first's: never the thread's whole total again.
    expect(second.tokens!.inputTokens).toBe(total.input_tokens - first.tokens!.inputTokens);
    expect(second.tokens).toMatchObject({ costSource: 'estimate', cachedInputTokens: 0 });
    expect(second.tokens!.costUsd).toBeCloseTo((second.tokens!.inputTokens * 2 + second.tokens!.outputTokens * 10) / 1e6, 12);
    expect(second.outcome.kind === 'answer' && second.outcome.result.total_cost_usd).toBe(second.tokens!.costUsd);
  });

  it('without a price the cost is unknown, not zero', async () => {
    const w = world(['Done.\nSTATUS: DONE']);
    const record = await w.agent.call(w.request());
    expect(record.tokens).toMatchObject({ costUsd: null, costSource: 'unknown' });
  });

  it('a write outside the working directory is refused silently and recorded as a denial to put to a human', async () => {
    const w = world([{ files: { '../outside.txt': 'no', 'inside.txt': 'yes' }, text: 'Done.\nSTATUS: DONE' }]);
    const record = await w.agent.call(w.request());
    expect(existsSync(join(w.root, 'outside.txt'))).toBe(false);
    expect(existsSync(join(w.workdir, 'inside.txt'))).toBe(true);
    expect(record.exitCode).toBe(0);
    expect(record.permissionDenials).toEqual([{ tool: 'apply_patch', input: '../outside.txt', rule: 'Sandbox(danger-full-access)' }]);
  });

  it('read-only refuses every write; a granted Write lifts it to workspace-write on the next call', async () => {
    const w = world([{ files: { 'a.txt': 'x' }, text: 'Tried.\nSTATUS: DONE' }], { sandbox: 'read-only' });
    const refused = await w.agent.call(w.request());
    expect(refused.permissionDenials).toEqual([{ tool: 'apply_patch', input: 'a.txt', rule: 'Write' }]);
    expect(existsSync(join(w.workdir, 'a.txt'))).toBe(false);
    const granted = await w.agent.call(w.request({ sessionId: refused.sessionId, mode: 'resume', allowedTools: ['Write'] }));
    expect(granted.argv).toContain('workspace-write');
    expect(granted.permissionDenials).toBeUndefined();
    expect(existsSync(join(w.workdir, 'a.txt'))).toBe(true);
  });

  it('the same outcome kinds as Claude: 429, auth, a busy thread, an unknown thread', async () => {
    const w = world([{ error: 429, retries: 2 }, { error: 401 }]);
    const limited = await w.agent.call(w.request());
    expect(limited.outcome).toMatchObject({ kind: 'rateLimited', status: 429 });
    expect(limited.apiRetries).toBe(2);
    expect((await w.agent.call(w.request())).outcome).toMatchObject({ kind: 'fatal', message: expect.stringContaining('401 Unauthorized') });
    const unknown = await w.agent.call(w.request({ sessionId: '01a25199-0000-7000-8000-000000000000', mode: 'resume' }));
    expect(unknown.outcome.kind).toBe('noConversation');
  });

  it('a hung API: the idle watchdog kills the whole process group and the call is stalled', async () => {
    const w = world([{ hang: true }], { idleTimeoutMs: 600 });
    const started = Date.now();
    const record = await w.agent.call(w.request());
    expect(record.outcome).toMatchObject({ kind: 'stalled' });
    expect(Date.now() - started).toBeLessThan(10_000);
    const pid = w.calls().find((c) => c.outcome === 'hang')!.pid;
    await until(() => !isAlive(pid), 5_000, 'the hung fake to be gone');
  });

  it('a missing binary or CODEX_HOME is one line naming the fix', () => {
    const w = world([], { command: join(tmpdir(), 'no-such-codex') });
    expect(() => w.agent.preflight()).toThrow(/^the codex binary ".*no-such-codex" was not found — install Codex \(npm i -g @openai\/codex\) or pass --agent-bin <path> \/ set agent.codex.command$/);
    const missingHome = world([], { home: join(w.root, 'no-such-home') });
    expect(() => missingHome.agent.preflight()).toThrow(`CODEX_HOME ${join(w.root, 'no-such-home')} does not exist, and Codex will not create it — create the folder, or point agent.codex.home / CODEX_HOME elsewhere`);
  });

  it('the usage ledger survives a new agent (another Obra process) on the same CODEX_HOME', async () => {
    const w = world(['One.', 'Two.']);
    const first = await w.agent.call(w.request());
    const again = new CodexAgent({ ...w.agent.options });
    const second = await again.call(w.request({ sessionId: first.sessionId, mode: 'resume' }));
    expect(second.tokens!.inputTokens).toBeLessThan(readCodexTurn(second.stdout).usage!.input_tokens);
  });
});
