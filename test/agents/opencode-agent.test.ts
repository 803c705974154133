import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processReaper } from '../../src/agents/reaper.js';
import { OpencodeAgent, tokensOf, type OpencodeAgentOptions } from '../../src/agents/opencode/opencode-agent.js';
import { classifyOpencode } from '../../src/agents/opencode/opencode-classify.js';
import { opencodeDenials, opencodePermissions } from '../../src/agents/opencode/opencode-permissions.js';
import { readOpencodeTurn } from '../../src/agents/opencode/opencode-stream.js';
import { cliSamples, fakeCliWorld, raw } from './cli-world.js';
import { isAlive, ROOT, until } from './fake-env.js';

const FAKE_OPENCODE = join(ROOT, 'fixtures/fake-opencode');
const { sample, timed } = cliSamples('opencode');
const outcomeOf = (call: { stdout: string; stderr: string; exitCode: number | null }) => classifyOpencode(raw(call), readOpencodeTurn(call.stdout), 1_000);

describe('the real opencode 1.18.33 samples', () => {
  it('a plain answer: the session on every line, the text of the last step, tokens; no cost without a price in its config', () => {
    const turn = readOpencodeTurn(sample('plain.jsonl'));
    expect(turn).toMatchObject({ sessionId: 'ses_dae696113ffeXPPzPuPS2o7PsE', answer: 'Mock answer: the task is handled.\nSTATUS: DONE', steps: 1, cost: 0, error: null, junk: 0 });
    expect(turn.tokens).toEqual({ input: 102, output: 12, reasoning: 0, cacheRead: 0, cacheWrite: 0 });
    expect(outcomeOf({ stdout: sample('plain.jsonl'), stderr: '', exitCode: 0 })).toEqual({ kind: 'answer', apiStatus: null });
    // Reported 0 says nothing: Obra's price table estimates it, or it is unknown.
    expect(tokensOf(turn, null)).toEqual({ inputTokens: 102, outputTokens: 12, cachedInputTokens: 0, costUsd: null, costSource: 'unknown' });
    expect(tokensOf(turn, { input: 1, output: 10 })).toMatchObject({ costUsd: (102 + 120) / 1e6, costSource: 'estimate' });
  });

  it("a model priced in opencode's config: its own cost, reported", () => {
    const turn = readOpencodeTurn(sample('cost-configured.jsonl'));
    expect(tokensOf(turn, { input: 99, output: 99 })).toEqual({ inputTokens: 102, outputTokens: 12, cachedInputTokens: 0, costUsd: 0.000486, costSource: 'reported' });
  });

  it('a write in a resumed session: the file, the steps summed, the answer after the tool', () => {
    const turn = readOpencodeTurn(sample('resume-turn3-write.jsonl'));
    expect(turn).toMatchObject({ sessionId: 'ses_dae68e5f3ffeBUPqTGH8a1b4ST', filesChanged: ['<cwd>/resumed.txt'], toolCalls: 1, steps: 2, answer: 'Mock answer: the task is handled.\nSTATUS: DONE', refused: [] });
    expect(turn.tokens.input).toBe(106 + 108);
    expect(readOpencodeTurn(sample('resume-turn1.jsonl')).sessionId).toBe(turn.sessionId);
  });

  it('refusals: an `ask` rule auto-rejected (the run stops, no answer), a denied tool not offered, a rule denying a command or a path outside', () => {
    const rejected = timed('write-ask-auto-rejected.timed.jsonl');
    const turn = readOpencodeTurn(rejected.stdout);
    expect([rejected.exitCode, turn.answer, rejected.stderr]).toEqual([0, '', '! permission requested: edit (ask.txt); auto-rejecting']);
    expect(opencodeDenials(turn.refused)).toEqual([{ tool: 'write', input: '<cwd>/ask.txt', rule: 'Write' }]);
    expect(outcomeOf(rejected)).toEqual({ kind: 'answer', apiStatus: null });
    expect(opencodeDenials(readOpencodeTurn(sample('write-deny.jsonl')).refused)).toEqual([{ tool: 'write', input: '(not offered)', rule: 'Write' }]);
    // With no command allowed at all (a task without checks), opencode does not offer bash: the call's command is unknown.
    expect(opencodeDenials(readOpencodeTurn(sample('bash-not-offered.jsonl')).refused)).toEqual([{ tool: 'bash', input: '(not offered)', rule: 'Bash' }]);
    expect(opencodeDenials(readOpencodeTurn(sample('bash-denied-by-rule.jsonl')).refused)).toEqual([{ tool: 'bash', input: 'touch made-by-shell.txt', rule: 'Bash(touch made-by-shell.txt)' }]);
    expect(readOpencodeTurn(sample('write-outside-denied.jsonl')).refused).toEqual([{ tool: 'write', input: '<cwd>/../outside.txt', why: 'rule', outside: true }]);
    expect(readOpencodeTurn(sample('write-default-config.jsonl'))).toMatchObject({ filesChanged: ['<cwd>/hello.txt'], refused: [] });
  });

  it("the CLI's own retries end in one error event: 429 rate limited, 500 an API-error answer, the provider timeout a stall", () => {
    expect(outcomeOf(timed('429-exhausted.timed.jsonl'))).toEqual({ kind: 'rateLimited', status: 429, message: 'Rate limit reached for requests on mock-model. Limit 500, Used 500, Requested 1. Please try again in 2s.' });
    expect(outcomeOf(timed('500-exhausted.timed.jsonl'))).toEqual({ kind: 'answer', apiStatus: 500 });
    expect(outcomeOf(timed('hang-timeout-10s.timed.jsonl'))).toMatchObject({ kind: 'stalled', message: "the API did not answer within opencode's provider timeout: The operation timed out." });
    expect(outcomeOf(timed('429-then-ok.timed.jsonl'))).toEqual({ kind: 'answer', apiStatus: null });
    expect(outcomeOf(timed('500-then-ok.timed.jsonl'))).toEqual({ kind: 'answer', apiStatus: null });
  });

  it('an unknown session is noConversation; silence (a hang, a resume from another folder) is the watchdog\'s stall', () => {
    expect(outcomeOf(timed('resume-unknown-id.timed.jsonl'))).toEqual({ kind: 'noConversation', message: 'Error: Session not found' });
    expect(classifyOpencode(raw({ stoppedBy: 'idle', idleMs: 300_000, exitCode: null, signal: 'SIGTERM' }), readOpencodeTurn(''), 0)).toMatchObject({ kind: 'stalled', idleMs: 300_000 });
    expect(classifyOpencode(raw({ exitCode: 0 }), readOpencodeTurn(''), 0)).toMatchObject({ kind: 'malformed', message: 'opencode exited 0 but printed no events' });
    expect(classifyOpencode(raw({ spawnError: 'ENOENT: spawn opencode', spawnCode: 'ENOENT', exitCode: null }), readOpencodeTurn(''), 0)).toMatchObject({ kind: 'fatal', message: 'the opencode binary was not found — install opencode (npm i -g opencode-ai) or set agent.opencode.command / --agent-bin' });
  });

  it('the prompt on stdin reaches the model verbatim; a resumed turn carries the history; --auto approves an ask; a hang prints nothing at all', () => {
    expect(readOpencodeTurn(sample('prompt-via-stdin.jsonl'))).toMatchObject({ answer: 'Mock answer: the task is handled.\nSTATUS: DONE', error: null });
    const requests = sample('resume.requests.jsonl').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; carried: string[] });
    expect(requests.filter((r) => r.kind === 'main').map((r) => r.carried.filter((c) => c.startsWith('user:')).length)).toEqual([1, 2, 3]);
    expect(readOpencodeTurn(sample('write-ask-with-auto.jsonl'))).toMatchObject({ filesChanged: ['<cwd>/askauto.txt'], refused: [] });
    for (const name of ['hang-default.timed.jsonl', 'resume-from-subdirectory-never-exits.timed.jsonl']) {
      const silent = timed(name);
      // Killed by the harness (60 s, 480 s) without a single event.
      expect(silent.stdout).toBe('');
      // What Obra sees of it: silence, until the idle watchdog stops the call.
      expect(classifyOpencode(raw({ stoppedBy: 'idle', idleMs: 60_000, exitCode: null, signal: 'SIGTERM' }), readOpencodeTurn(silent.stdout), 0)).toMatchObject({ kind: 'stalled' });
    }
  });

  it('two resumes of one session at once run away: eleven answers in one run (what Obra\'s session lock prevents)', () => {
    expect(readOpencodeTurn(timed('concurrent-resume-A.timed.jsonl').stdout).steps).toBe(11);
  });
});

describe("Obra's permissions in opencode's terms (OPENCODE_PERMISSION)", () => {
  it('edit: edits allowed, paths outside denied, commands denied but the checks, the web denied', () => {
    expect(opencodePermissions('edit', ['Bash(npm test)', 'Bash(npm run lint:*)'])).toEqual({
      edit: 'allow',
      bash: { '*': 'deny', 'npm test': 'allow', 'npm run lint*': 'allow' },
      external_directory: { '*': 'deny' },
      webfetch: 'deny',
      websearch: 'deny',
      doom_loop: 'deny',
      question: 'deny',
      read: { '*': 'allow', '*.env': 'deny', '*.env.*': 'deny', '*.env.example': 'allow' },
    });
    // `*` comes first: opencode takes the last matching rule.
    expect(Object.keys(opencodePermissions('edit', ['Bash(npm test)'])!.bash as object)).toEqual(['*', 'npm test']);
  });

  it('what a person grants widens it: Write lifts read-only, Bash any command, ExternalDirectory a folder, WebFetch the web; config adds nothing', () => {
    expect(opencodePermissions('read-only', [])).toMatchObject({ edit: 'deny' });
    expect(opencodePermissions('read-only', ['Write'])).toMatchObject({ edit: 'allow' });
    expect(opencodePermissions('edit', ['Bash', 'ExternalDirectory(/data/*)', 'WebFetch(domain:x.org)'])).toMatchObject({ bash: { '*': 'allow' }, external_directory: { '*': 'deny', '/data/*': 'allow' }, webfetch: 'allow' });
    expect(opencodePermissions('config', ['Write'])).toBeNull();
    expect(opencodeDenials([{ tool: 'write', input: '/repo/../data/x.txt', why: 'rule', outside: true }])).toEqual([{ tool: 'write', input: '/repo/../data/x.txt', rule: 'ExternalDirectory(/data/*)' }]);
  });
});

function world(replies: unknown[], options: Partial<OpencodeAgentOptions> = {}) {
  const w = fakeCliWorld('opencode', null);
  const agent = new OpencodeAgent({ command: FAKE_OPENCODE, timeoutMs: 20_000, killGraceMs: 300, locks: w.locks, env: { HOME: w.root, FAKE_OPENCODE_REPLIES: JSON.stringify(replies), FAKE_OPENCODE_LOG: w.log }, ...options });
  const calls = () => w.calls<{ argv: string[]; outcome: string; pid: number; sessionID?: string; permission: string | null }>();
  return { ...w, agent, calls };
}

describe('OpencodeAgent, driving fixtures/fake-opencode', () => {
  it('creates a session with the prompt on stdin, resumes it with -s from the same folder; edits inside, a command refused, then granted', async () => {
    const w = world(['First.\nSTATUS: CONTINUE', { files: { 'hello.txt': 'hi' }, shell: ['touch nope.txt'], text: 'Wrote it.\nSTATUS: DONE' }, { shell: ['touch nope.txt'], text: 'Ran it.\nSTATUS: DONE' }], { model: 'mock/mock-model', price: { input: 2, output: 10 } });
    const first = await w.agent.call(w.request({ sessionId: '6f1c0000-0000-4000-8000-000000000000', prompt: 'Do the task, with spaces.' }));
    expect(first.outcome).toMatchObject({ kind: 'answer', result: { result: 'First.\nSTATUS: CONTINUE', is_error: false } });
    // opencode picks the session id: the record carries it, not the one Obra proposed.
    expect(first.sessionId).toMatch(/^ses_[A-Za-z0-9]{26}$/);
    expect(first.argv.slice(1)).toEqual(['run', '--format', 'json', '-m', 'mock/mock-model']);
    // The prompt went in verbatim (on stdin), not quoted as a spaced argument would be.
    const stored = JSON.parse(readFileSync(join(w.root, '.local/share/opencode/fake-sessions', `${first.sessionId}.json`), 'utf8')) as { messages: { text: string }[] };
    expect(stored.messages[0]!.text).toBe('Do the task, with spaces.');

    // A check's rule (the engine adds `Bash(npm test)` for a task checked by `npm test`) lets opencode offer bash, for that command only.
    const second = await w.agent.call(w.request({ sessionId: first.sessionId, mode: 'resume', prompt: 'Now write hello.txt.', allowedTools: ['Bash(npm test)'] }));
    expect(second.sessionId).toBe(first.sessionId);
    expect(second.argv.slice(-2)).toEqual(['-s', first.sessionId]);
    expect(readFileSync(join(w.workdir, 'hello.txt'), 'utf8')).toBe('hi\n');
    expect(existsSync(join(w.workdir, 'nope.txt'))).toBe(false);
    expect(second.work).toMatchObject({ filesChanged: [expect.stringMatching(/hello\.txt$/)] });
    expect(second.permissionDenials).toEqual([{ tool: 'bash', input: 'touch nope.txt', rule: 'Bash(touch nope.txt)' }]);
    expect(second.outcome).toMatchObject({ kind: 'answer', result: { result: 'Wrote it.\nSTATUS: DONE', num_turns: 3 } });
    expect(second.tokens).toMatchObject({ costSource: 'estimate' });
    expect(second.tokens!.costUsd).toBeCloseTo((second.tokens!.inputTokens * 2 + second.tokens!.outputTokens * 10) / 1e6, 12);
    expect(JSON.parse(w.calls()[1]!.permission!)).toEqual(opencodePermissions('edit', ['Bash(npm test)']));

    // The grant (obra answer --allow, or a check's rule) reaches opencode as an allow rule for that command.
    const third = await w.agent.call(w.request({ sessionId: first.sessionId, mode: 'resume', allowedTools: ['Bash(touch nope.txt)'] }));
    expect(existsSync(join(w.workdir, 'nope.txt'))).toBe(true);
    expect(third.permissionDenials).toBeUndefined();
  });

  it('an edit outside the working directory is refused, with the folder to grant; read-only refuses edits inside too', async () => {
    const w = world([{ files: { '../outside.txt': 'x' }, text: 'Tried.\nSTATUS: DONE' }]);
    const call = await w.agent.call(w.request());
    expect(existsSync(join(w.root, 'outside.txt'))).toBe(false);
    expect(call.permissionDenials).toEqual([{ tool: 'write', input: join(w.root, 'outside.txt'), rule: `ExternalDirectory(${w.root}/*)` }]);
    const r = world([{ files: { 'inside.txt': 'x' }, text: 'Tried.\nSTATUS: DONE' }], { permissionMode: 'read-only' });
    const refused = await r.agent.call(r.request());
    expect(existsSync(join(r.workdir, 'inside.txt'))).toBe(false);
    expect(refused.permissionDenials).toEqual([{ tool: 'write', input: '(not offered)', rule: 'Write' }]);
  });

  it('API failures: 429 rate limited, 500 an is_error answer, 401 fatal, a provider timeout stalled; an unknown session noConversation', async () => {
    const w = world([{ error: 429 }, { error: 500 }, { error: 401 }, { error: 'timeout' }]);
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push((await w.agent.call(w.request())).outcome);
    expect(outcomes.map((o) => o.kind)).toEqual(['rateLimited', 'answer', 'fatal', 'stalled']);
    expect(outcomes[1]).toMatchObject({ result: { is_error: true, api_error_status: 500, result: 'API Error: 500 The server had an error while processing your request. Sorry about that!' } });
    expect(outcomes[2]).toMatchObject({ message: 'the agent cannot reach the API: Incorrect API key provided: dummy.' });
    const unknown = await w.agent.call(w.request({ sessionId: 'ses_000000000000000000000000zz', mode: 'resume' }));
    expect([unknown.outcome.kind, unknown.exitCode]).toEqual(['noConversation', 1]);
  });

  it("a resume of an id opencode never gave is noConversation at once; a session held by Obra's lock is busy; neither starts the CLI", async () => {
    const w = world(['x']);
    expect((await w.agent.call(w.request({ sessionId: '6f1c0000-0000-4000-8000-000000000000', mode: 'resume' }))).outcome.kind).toBe('noConversation');
    const held = w.locks.tryAcquire('ses_0000000000000000000000000a');
    expect(held.ok).toBe(true);
    const busy = await w.agent.call(w.request({ sessionId: 'ses_0000000000000000000000000a', mode: 'resume' }));
    expect(busy.outcome).toMatchObject({ kind: 'sessionBusy', message: expect.stringContaining("(Obra's session lock)") });
    expect(w.calls()).toEqual([]);
  });

  it("two calls on one session at once: Obra's lock lets one run, the other is busy (opencode itself would run both, and they run away)", async () => {
    const w = world(['First.\nSTATUS: CONTINUE', { text: 'Slow.\nSTATUS: DONE', latency_ms: 800 }]);
    const first = await w.agent.call(w.request());
    const both = await Promise.all([0, 1].map(() => w.agent.call(w.request({ sessionId: first.sessionId, mode: 'resume' }))));
    expect(both.map((c) => c.outcome.kind).sort()).toEqual(['answer', 'sessionBusy']);
    expect(w.calls().filter((c) => c.argv.includes('-s'))).toHaveLength(1);
  });

  it('a resume from another folder: opencode prints nothing and never exits, so the watchdog stops it (stalled)', async () => {
    const w = world(['First.\nSTATUS: CONTINUE'], { idleTimeoutMs: 2_000 });
    const first = await w.agent.call(w.request());
    const elsewhere = join(w.root, 'elsewhere');
    mkdirSync(elsewhere);
    const moved = await w.agent.call(w.request({ sessionId: first.sessionId, mode: 'resume', workdir: elsewhere }));
    expect(moved.outcome.kind).toBe('stalled');
    expect(w.calls().at(-1)!.outcome).toBe('other-directory-hang');
  });

  it('a hung API: the idle watchdog kills the process group, the call is stalled', async () => {
    const w = world([{ hang: true }], { idleTimeoutMs: 2_000 });
    expect((await w.agent.call(w.request())).outcome.kind).toBe('stalled');
    const pid = w.calls().find((c) => c.outcome === 'hang')!.pid;
    await until(() => !isAlive(pid), 5_000, 'the hung fake to be gone');
  });

  it("the CLI runs under this process's reaper (spawnAgentProcess): tagged with its owner, so it dies with Obra", async () => {
    const w = world([{ hang: true }], { idleTimeoutMs: 2_000 });
    const call = w.agent.call(w.request());
    await until(() => w.calls().some((c) => c.outcome === 'hang'), 10_000, 'the fake to hang');
    const pid = w.calls().find((c) => c.outcome === 'hang')!.pid;
    expect(readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')).toContain(processReaper.tag);
    expect((await call).outcome.kind).toBe('stalled');
  });

  it("opencode's config prices the model: its cost is reported, not estimated", async () => {
    const w = world(['Priced.\nSTATUS: DONE'], { model: 'mock/mock-model', price: { input: 100, output: 100 } });
    const config = join(w.root, 'opencode.json');
    writeFileSync(config, JSON.stringify({ provider: { mock: { models: { 'mock-model': { cost: { input: 3, output: 15 } } } } } }));
    const agent = new OpencodeAgent({ ...w.agent.options, env: { ...w.agent.options.env, OPENCODE_CONFIG: config } });
    const call = await agent.call(w.request());
    expect(call.tokens).toMatchObject({ costSource: 'reported', costUsd: (call.tokens!.inputTokens * 3 + call.tokens!.outputTokens * 15) / 1e6 });
  });
});
