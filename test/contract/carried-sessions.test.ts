import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockAnthropic, type MockAnthropic } from '../../fixtures/mock-anthropic/server.js';
import { startMockGemini, type MockGemini } from '../../fixtures/mock-gemini/server.js';
import { startMockOpenAI, type MockOpenAI } from '../../fixtures/mock-openai/server.js';
import type { Agent } from '../../src/agents/agent.js';
import { ClaudeCodeAgent } from '../../src/agents/claude-code-agent.js';
import { CodexAgent } from '../../src/agents/codex/codex-agent.js';
import { GeminiAgent } from '../../src/agents/gemini/gemini-agent.js';
import { OpencodeAgent } from '../../src/agents/opencode/opencode-agent.js';
import { QwenAgent } from '../../src/agents/qwen/qwen-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import type { AgentCallRecord } from '../../src/core/types.js';
import type { RestateClient } from '../../src/hosts/restate/client.js';
import type { RunTranscript } from '../../src/hosts/restate/model.js';
import { SessionCarrier } from '../../src/hosts/restate/session-carrier.js';
import { realClaudeOrSkip, realEnv } from '../real-cli/real-claude.js';
import { realAgentCliOrSkip } from './real-agent-cli.js';

/**
 * A task's conversation moves between Restate workers as its CLI's own session file: the first turn on one
 * "machine" (its own HOME and checkout folder), the second on another that has never seen the session. The
 * second turn must carry the first (the fakes answer with the turn they are on; the real CLIs' requests to the
 * stand-in model hold the first prompt), for the fakes and for the real Claude Code, Codex, Gemini CLI and Qwen Code.
 */

const FIXTURES = resolve(import.meta.dirname, '../../fixtures');
const SESSION = '6f1c0000-0000-4000-8000-0000000000dd';
type Kind = 'codex' | 'gemini' | 'qwen' | 'opencode';
interface Machine {
  home: string;
  workdir: string;
}

/** A session that is free, and the RestateClient calls the carrier makes for it (nothing is kept there). */
const freeSessions = { async session() {
  return { ok: true, transcript: null };
} } as unknown as RestateClient;

function machine(root: string, name: string, folder: string): Machine {
  const home = join(root, name);
  const workdir = join(home, 'checkouts', folder);
  mkdirSync(workdir, { recursive: true });
  return { home, workdir };
}

/** The first turn on machine A, the second on machine B from the transcript A handed to Restate. */
async function twoMachines(agentOn: (m: Machine) => Agent, prompts: [string, string]) {
  const root = mkdtempSync(join(tmpdir(), 'obra-carried-'));
  const a = machine(root, 'a', 'run-1');
  const b = machine(root, 'b', 'task-run-1');
  const first = new SessionCarrier(agentOn(a), { client: freeSessions, runId: 'run-1', epoch: 1, worker: 'a' });
  const one = await first.call({ runId: 'run-1', index: 1, attempt: 1, prompt: prompts[0], sessionId: SESSION, mode: 'create', workdir: a.workdir });
  const handed = first.takeTranscript();
  expect(handed, 'machine A hands its session file to Restate').not.toBeNull();
  const { gzipBase64, mark, savedAt, savedBy, sessionId } = handed!;
  const runTranscript: RunTranscript = { sessionId, gzipBase64, ...mark, bytes: Buffer.byteLength(gzipBase64, 'base64'), savedAt, savedBy };
  const second = new SessionCarrier(agentOn(b), { client: freeSessions, runId: 'run-1', epoch: 2, worker: 'b', runTranscript });
  const two = await second.call({ runId: 'run-1', index: 2, attempt: 1, prompt: prompts[1], sessionId: one.sessionId, mode: 'resume', workdir: b.workdir });
  return { one, two, b, firstCopy: gunzipSync(Buffer.from(gzipBase64, 'base64')), file: (agentOn(b).sessionFile?.(one.sessionId, b.workdir) ?? '') };
}

const answerOf = (record: AgentCallRecord) => (record.outcome.kind === 'answer' ? record.outcome.result.result.trim() : record.outcome.kind);

const fakes: Record<Kind, (m: Machine) => Agent> = {
  codex: (m) => {
    mkdirSync(join(m.home, '.codex'), { recursive: true });
    return new CodexAgent({ command: join(FIXTURES, 'fake-codex'), timeoutMs: 20_000, home: join(m.home, '.codex'), locks: new SessionLocks(join(m.home, 'locks')), env: { HOME: m.home, FAKE_CODEX_REPLIES: JSON.stringify(['On turn {{turn}}.\nSTATUS: CONTINUE']) } });
  },
  gemini: (m) => new GeminiAgent({ command: join(FIXTURES, 'fake-gemini'), timeoutMs: 20_000, locks: new SessionLocks(join(m.home, 'locks')), env: { HOME: m.home, FAKE_GEMINI_REPLIES: JSON.stringify(['On turn {{turn}}.\nSTATUS: CONTINUE']) } }),
  qwen: (m) => new QwenAgent({ command: join(FIXTURES, 'fake-qwen'), timeoutMs: 20_000, locks: new SessionLocks(join(m.home, 'locks')), env: { HOME: m.home, FAKE_QWEN_REPLIES: JSON.stringify(['On turn {{turn}}.\nSTATUS: CONTINUE']) } }),
  opencode: (m) => new OpencodeAgent({ command: join(FIXTURES, 'fake-opencode'), timeoutMs: 20_000, locks: new SessionLocks(join(m.home, 'locks')), env: { HOME: m.home, FAKE_OPENCODE_REPLIES: JSON.stringify(['On turn {{turn}}.\nSTATUS: CONTINUE']) } }),
};

describe('a session carried between Restate workers as the CLI\'s own file: the fakes', () => {
  for (const kind of ['codex', 'gemini', 'qwen', 'opencode'] as const) {
    it(`${kind}: the second machine restores the file where the CLI looks and resumes on the first turn`, async () => {
      const { one, two, file } = await twoMachines(fakes[kind], ['Remember PINEAPPLE.', 'Which word?']);
      expect(answerOf(one)).toBe('On turn 1.\nSTATUS: CONTINUE');
      expect(two.session).toEqual({ restored: true, note: 'transcript restored on b (saved by a)' });
      expect(two.mode).toBe('resume');
      expect(answerOf(two)).toBe('On turn 2.\nSTATUS: CONTINUE');
      expect(existsSync(file)).toBe(true);
    });
  }
});

const claude = await realClaudeOrSkip();
const reals = { codex: await realAgentCliOrSkip('codex'), gemini: await realAgentCliOrSkip('gemini'), qwen: await realAgentCliOrSkip('qwen'), opencode: await realAgentCliOrSkip('opencode') };

describe('a session carried between Restate workers as the CLI\'s own file: the real CLIs', () => {
  let openai: MockOpenAI | null = null;
  let gemini: MockGemini | null = null;
  let anthropic: MockAnthropic | null = null;
  beforeAll(async () => {
    if (claude.claude) anthropic = await startMockAnthropic();
    if (reals.codex.bin || reals.qwen.bin || reals.opencode.bin) openai = await startMockOpenAI();
    if (reals.gemini.bin) gemini = await startMockGemini();
  });
  afterAll(async () => {
    await openai?.close();
    await gemini?.close();
    await anthropic?.close();
  });
  const replies = ['Remembered.\nSTATUS: CONTINUE', 'It was PINEAPPLE.\nSTATUS: DONE'];

  it.skipIf(!claude.claude)(`claude ${claude.claude?.version ?? ''}: the second turn's request carries the first`, async () => {
    anthropic!.script(replies);
    const before = anthropic!.requests.length;
    const { two } = await twoMachines((m) => new ClaudeCodeAgent({ command: claude.claude!.bin, timeoutMs: 60_000, killGraceMs: 300, locks: new SessionLocks(join(m.home, 'locks')), env: realEnv(m.home, anthropic!.url) }), ['Remember the word PINEAPPLE.', 'Which word?']);
    expect(answerOf(two)).toBe('It was PINEAPPLE.\nSTATUS: DONE');
    const texts = anthropic!.requests.slice(before).at(-1)!.messages.map((m) => `${m.role}: ${m.text}`);
    expect(texts.filter((t) => t.startsWith('user: ')).join('\n')).toContain('Remember the word PINEAPPLE.');
    expect(texts.join('\n')).toContain('assistant: Remembered.');
  }, 120_000);

  it.skipIf(!reals.codex.bin)(`codex ${reals.codex.version}: the second turn's request carries the first`, async () => {
    openai!.script(replies);
    const before = openai!.requests.length;
    const provider = `model_providers.mock={name="mock",base_url="${openai!.url}",wire_api="responses",env_key="FAKE_KEY",request_max_retries=0,stream_max_retries=0}`;
    const { two } = await twoMachines((m) => {
      mkdirSync(join(m.home, '.codex'), { recursive: true });
      return new CodexAgent({ command: reals.codex.bin!, timeoutMs: 60_000, home: join(m.home, '.codex'), killGraceMs: 300, locks: new SessionLocks(join(m.home, 'locks')), env: { HOME: m.home, FAKE_KEY: 'dummy' }, model: 'gpt-5.5', extraArgs: ['-c', 'analytics.enabled=false', '-c', 'model_provider=mock', '-c', provider] });
    }, ['Remember the word PINEAPPLE.', 'Which word?']);
    expect(answerOf(two)).toBe('It was PINEAPPLE.\nSTATUS: DONE');
    expect(openai!.requests.slice(before).at(-1)!.carried).toEqual(expect.arrayContaining(['user: Remember the word PINEAPPLE.', 'assistant: Remembered.\nSTATUS: CONTINUE', 'user: Which word?']));
  }, 120_000);

  it.skipIf(!reals.qwen.bin)(`qwen ${reals.qwen.version}: the second turn's request carries the first`, async () => {
    openai!.script(replies);
    const before = openai!.requests.length;
    const { two } = await twoMachines((m) => {
      mkdirSync(join(m.home, '.qwen'), { recursive: true });
      writeFileSync(join(m.home, '.qwen/settings.json'), JSON.stringify({ memory: { enableManagedAutoMemory: false } }));
      return new QwenAgent({ command: reals.qwen.bin!, timeoutMs: 90_000, killGraceMs: 300, extraArgs: ['--auth-type', 'openai'], locks: new SessionLocks(join(m.home, 'locks')), env: { HOME: m.home, OPENAI_BASE_URL: openai!.url, OPENAI_API_KEY: 'dummy', OPENAI_MODEL: 'mock-model' } });
    }, ['Remember the word PINEAPPLE.', 'Which word?']);
    expect(answerOf(two)).toBe('It was PINEAPPLE.\nSTATUS: DONE');
    expect(openai!.requests.slice(before).at(-1)!.carried).toEqual(expect.arrayContaining(['user: Remember the word PINEAPPLE.', 'assistant: Remembered.\nSTATUS: CONTINUE', 'user: Which word?']));
  }, 120_000);

  // opencode's sessions are rows in its SQLite database: carried as its own export, imported on the other machine.
  // Then, on that machine, the first machine's copy (turn 1) over its session (turns 1 and 2): a plain
  // `opencode import` keeps turn 2, which is why loading a copy deletes the session first.
  it.skipIf(!reals.opencode.bin)(`opencode ${reals.opencode.version}: the second turn's request carries the first; loading a copy replaces the session`, async () => {
    openai!.script(replies);
    const before = openai!.requests.length;
    const agentOn = (m: Machine) => {
      // A worker's checkout is a git repository (opencode keys its projects on the repository); each its own here.
      if (!existsSync(join(m.workdir, '.git'))) execFileSync('git', ['init', '-q'], { cwd: m.workdir });
      const config = join(m.home, 'opencode.json');
      writeFileSync(config, JSON.stringify({ provider: { mock: { npm: '@ai-sdk/openai-compatible', name: 'Mock', options: { baseURL: openai!.url, apiKey: 'dummy' }, models: { 'mock-model': { name: 'Mock Model' } } } }, model: 'mock/mock-model' }));
      return new OpencodeAgent({ command: reals.opencode.bin!, timeoutMs: 90_000, killGraceMs: 300, model: 'mock/mock-model', locks: new SessionLocks(join(m.home, 'locks')), env: { HOME: m.home, OPENCODE_CONFIG: config, OPENCODE_DISABLE_MODELS_FETCH: '1', OPENCODE_DISABLE_AUTOUPDATE: '1' } });
    };
    const { one, two, b, firstCopy } = await twoMachines(agentOn, ['Remember the word PINEAPPLE.', 'Which word?']);
    expect(two.sessionId).toBe(one.sessionId);
    expect(answerOf(two)).toBe('It was PINEAPPLE.\nSTATUS: DONE');
    expect(openai!.requests.slice(before).at(-1)!.carried).toEqual(expect.arrayContaining(['user: Remember the word PINEAPPLE.', 'assistant: Remembered.\nSTATUS: CONTINUE', 'user: Which word?']));
    expect(await opencodeCutBack(agentOn(b), b, one.sessionId, firstCopy, reals.opencode.bin!)).toEqual({ afterPlainImport: 2, afterLoad: 1 });
  }, 150_000);

  it.skipIf(!reals.gemini.bin)(`gemini ${reals.gemini.version}: the second turn's request carries the first`, async () => {
    gemini!.script(replies);
    const before = gemini!.requests.length;
    const { two } = await twoMachines((m) => {
      mkdirSync(join(m.home, '.gemini'), { recursive: true });
      writeFileSync(join(m.home, '.gemini/settings.json'), JSON.stringify({ security: { auth: { selectedType: 'gemini-api-key' } }, general: { maxAttempts: 1 } }));
      return new GeminiAgent({ command: reals.gemini.bin!, timeoutMs: 90_000, killGraceMs: 300, model: 'gemini-2.5-flash', locks: new SessionLocks(join(m.home, 'locks')), env: { HOME: m.home, GOOGLE_GEMINI_BASE_URL: gemini!.url, GEMINI_API_KEY: 'dummy' } });
    }, ['Remember the word PINEAPPLE.', 'Which word?']);
    expect(answerOf(two)).toBe('It was PINEAPPLE.\nSTATUS: DONE');
    expect(gemini!.requests.slice(before).at(-1)!.carried).toEqual(expect.arrayContaining(['user: Remember the word PINEAPPLE.', 'model: Remembered.\nSTATUS: CONTINUE', 'user: Which word?']));
  }, 120_000);
});

/**
 * opencode's store: an import over a session the database already has adds what it lacks and keeps the rest (so a
 * cut turn would stay), which is why loading a carried copy deletes the session first. `copy` is an export of
 * the session one turn behind the database's; returns the user turns after a plain import, then after a load.
 */
async function opencodeCutBack(agent: OpencodeAgent, m: Machine, id: string, copy: Buffer, bin: string) {
  const file = join(m.home, 'copy.json');
  writeFileSync(file, copy);
  const users = async () => {
    const out = join(m.home, `now-${Date.now()}.json`);
    await agent.sessionStore.save(id, out, m.workdir);
    const doc = JSON.parse(readFileSync(out, 'utf8')) as { messages: { info: { role: string } }[] };
    return doc.messages.filter((msg) => msg.info.role === 'user').length;
  };
  execFileSync(bin, ['import', file], { cwd: m.workdir, env: { ...process.env, ...agent.options.env, PWD: m.workdir }, stdio: 'ignore', timeout: 60_000 });
  const afterPlainImport = await users();
  await agent.sessionStore.load(id, file, m.workdir);
  return { afterPlainImport, afterLoad: await users() };
}

describe('opencode\'s session store (the fake, as the real one is above): loading a carried copy replaces the session the database had', () => {
  it('a plain import keeps the turn the copy lacks; a load drops it', async () => {
    const bin = join(FIXTURES, 'fake-opencode');
    const { one, b, firstCopy } = await twoMachines(fakes.opencode, ['Remember PINEAPPLE.', 'Which word?']);
    const agent = fakes.opencode(b) as OpencodeAgent;
    expect(await opencodeCutBack(agent, b, one.sessionId, firstCopy, bin)).toEqual({ afterPlainImport: 2, afterLoad: 1 });
  });
});
