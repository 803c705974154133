import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { startMockOpenAI, type MockOpenAI, type MockOpenAIReply } from '../../fixtures/mock-openai/server.js';
import { OpencodeAgent } from '../../src/agents/opencode/opencode-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import type { AgentCallRecord } from '../../src/core/types.js';
import { realAgentCliOrSkip } from './real-agent-cli.js';
import { commonShapeOf, contractSuites, fakeReply, type CommonShape, type Scenario } from './same-shapes.js';

/**
 * opencode's contract: the same scenarios through OpencodeAgent against fixtures/fake-opencode and the real
 * `opencode` binary, offline — its config (OPENCODE_CONFIG) names fixtures/mock-openai's Chat Completions endpoint
 * as an `@ai-sdk/openai-compatible` provider (compiled into the binary), with OPENCODE_DISABLE_MODELS_FETCH and
 * OPENCODE_DISABLE_AUTOUPDATE. The stand-in answers 429 and 500 with `retry-after-ms: 1`, which opencode honours,
 * so its own five retries take milliseconds instead of 17 s and 78 s. opencode picks its session ids: a shape says
 * only that a call's id is opencode's (`ses_…`) and that a resumed call kept the first one.
 */

const FAKE = resolve(import.meta.dirname, '../../fixtures/fake-opencode');
const real = await realAgentCliOrSkip('opencode');

type Api = { text: string } | { write: string; text: string } | { shell: string; text: string } | { error: 429 | 500 } | { hang: true };
/** Silence is the scenario for a hang; otherwise opencode's start-up (seconds, more on a busy machine) must not trip it. */
const idleFor = (apis: Api[]) => (apis.some((a) => 'hang' in a) ? 3_000 : 120_000);

interface Shape extends Omit<CommonShape, 'sessionId'> {
  isError?: boolean;
  answer?: string;
  /** `ses_…` for an id opencode gave, `same` for a call that kept the first call's, `none reported` before its first event. */
  session: string;
  /** The user messages the call's conversation carried (the prompts of this call and the ones before it). */
  history: string[];
}

function shapesOf(records: AgentCallRecord[], workdir: string, root: string, history: (i: number) => string[]): Shape[] {
  return records.map((record, i) => {
    const result = record.outcome.kind === 'answer' ? record.outcome.result : null;
    const { sessionId, ...common } = commonShapeOf(record, workdir);
    return {
      ...common,
      // A refused path and the folder to grant are in the scratch folder, which differs from run to run.
      denials: common.denials.map((d) => d.replaceAll(root, '<root>')),
      ...(result ? { isError: result.is_error, answer: result.result.trim() } : {}),
      session: i > 0 && sessionId === records[0]!.sessionId ? 'same' : sessionId.startsWith('ses_') ? 'ses_…' : 'none reported',
      history: history(i),
    };
  });
}

/**
 * Makes one call a prompt in a scratch git repository (Obra's tasks run in git worktrees; opencode keys its projects
 * and snapshots on the repository): the first creates the session, the later ones resume the id it reported.
 */
async function driveCalls(agentOf: (root: string, workdir: string) => OpencodeAgent, prompts: string[]) {
  const root = mkdtempSync(join(tmpdir(), 'obra-opencode-contract-'));
  const workdir = join(root, 'work');
  mkdirSync(workdir);
  gitRepo(workdir);
  const agent = agentOf(root, workdir);
  const records: AgentCallRecord[] = [];
  for (const prompt of prompts) records.push(await agent.call({ runId: 'contract', index: 1, attempt: 1, prompt, sessionId: records[0]?.sessionId ?? null, mode: records.length ? 'resume' : 'create', workdir }));
  return { records, workdir, root };
}

/** Obra's tasks run in git worktrees; opencode keys its projects (and snapshots) on the repository. */
function gitRepo(workdir: string): void {
  spawnSync('git', ['init', '-q'], { cwd: workdir });
  spawnSync('git', ['-c', 'user.email=contract@obra', '-c', 'user.name=contract', 'commit', '-q', '--allow-empty', '-m', 'init'], { cwd: workdir });
}

async function fakeShapes(scenario: Scenario<Api, Shape>): Promise<Shape[]> {
  const { records, workdir, root: home } = await driveCalls((root) => {
    return new OpencodeAgent({ command: FAKE, timeoutMs: 30_000, idleTimeoutMs: idleFor(scenario.apis), killGraceMs: 300, locks: new SessionLocks(join(root, 'locks')), env: { HOME: root, FAKE_OPENCODE_REPLIES: JSON.stringify(scenario.apis.map(fakeReply)) } });
  }, scenario.prompts);
  // The fake keeps the conversation in its session file: what a resumed turn would send.
  const file = join(home, '.local/share/opencode/fake-sessions', `${records[0]!.sessionId}.json`);
  const users = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { messages: { role: string; text: string }[] }).messages.filter((m) => m.role === 'user').map((m) => `user: ${m.text}`) : [];
  return shapesOf(records, workdir, home, (i) => users.slice(0, i + 1));
}

async function realShapes(bin: string, mock: MockOpenAI, scenario: Scenario<Api, Shape>): Promise<Shape[]> {
  const before = mock.requests.length;
  const { records, workdir, root: home } = await driveCalls((root, workdir) => {
    mock.script(scenario.apis.map((api): MockOpenAIReply => ('write' in api ? { write: { path: join(workdir, api.write), content: 'written' }, text: api.text } : 'error' in api ? { error: api.error, retryAfterMs: 1 } : api)));
    const config = join(root, 'opencode.json');
    writeFileSync(config, JSON.stringify({ provider: { mock: { npm: '@ai-sdk/openai-compatible', name: 'Mock', options: { baseURL: mock.url, apiKey: 'dummy' }, models: { 'mock-model': { name: 'Mock Model' } } } }, model: 'mock/mock-model' }));
    return new OpencodeAgent({
      command: bin,
      timeoutMs: 150_000,
      idleTimeoutMs: idleFor(scenario.apis),
      killGraceMs: 300,
      model: 'mock/mock-model',
      locks: new SessionLocks(join(root, 'locks')),
      env: { HOME: root, OPENCODE_CONFIG: config, OPENCODE_DISABLE_MODELS_FETCH: '1', OPENCODE_DISABLE_AUTOUPDATE: '1' },
    });
  }, scenario.prompts);
  const requests = mock.requests.slice(before);
  const history = (i: number) => requests.filter((r) => r.lastUserText === scenario.prompts[i]).at(-1)?.carried.filter((c) => scenario.prompts.some((p) => c === `user: ${p}`)) ?? [];
  return shapesOf(records, workdir, home, history);
}

const SCENARIOS: Scenario<Api, Shape>[] = [
  {
    name: 'a plain answer',
    apis: [{ text: 'Plain answer.\nSTATUS: DONE' }],
    prompts: ['Say something.'],
    expect: ([s]) => expect(s).toEqual({ outcome: 'answer', isError: false, answer: 'Plain answer.\nSTATUS: DONE', exitCode: 0, denials: [], files: [], session: 'ses_…', history: ['user: Say something.'] }),
  },
  {
    name: 'a file written in the working directory',
    apis: [{ write: 'written.txt', text: 'Wrote it.\nSTATUS: DONE' }],
    prompts: ['Write written.txt.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, denials: [], files: ['written.txt: written'], answer: 'Wrote it.\nSTATUS: DONE' }),
  },
  {
    name: 'a second call resumes the same session (-s), with its history',
    apis: [{ text: 'Remembered.\nSTATUS: CONTINUE' }, { text: 'It was PINEAPPLE.\nSTATUS: DONE' }],
    prompts: ['Remember the word PINEAPPLE.', 'Which word?'],
    expect: (shapes) =>
      expect(shapes.map((s) => [s.outcome, s.session, s.answer, s.history])).toEqual([
        ['answer', 'ses_…', 'Remembered.\nSTATUS: CONTINUE', ['user: Remember the word PINEAPPLE.']],
        ['answer', 'same', 'It was PINEAPPLE.\nSTATUS: DONE', ['user: Remember the word PINEAPPLE.', 'user: Which word?']],
      ]),
  },
  {
    name: 'an edit outside the working directory is refused (external_directory deny): one denial naming the folder, the turn goes on',
    apis: [{ write: '../outside.txt', text: 'Tried.\nSTATUS: DONE' }],
    prompts: ['Write ../outside.txt.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, answer: 'Tried.\nSTATUS: DONE', denials: ['write <root>/outside.txt → ExternalDirectory(<root>/*)'] }),
  },
  {
    name: 'a shell command no check allows is refused: bash is not offered, one denial, the turn goes on',
    apis: [{ shell: 'touch made-by-shell.txt', text: 'Tried.\nSTATUS: DONE' }],
    prompts: ['Run touch.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, files: [], denials: ['bash (not offered) → Bash'] }),
  },
  { name: '429 after its own retries: rate limited, exit 1', apis: [{ error: 429 }], prompts: ['Hello.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'rateLimited', exitCode: 1 }) },
  { name: '500 after its own retries: an API-error answer (is_error), exit 1', apis: [{ error: 500 }], prompts: ['Hello.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', isError: true, exitCode: 1 }) },
  { name: 'a hang: silence until the idle watchdog, which kills the process group (stalled)', apis: [{ hang: true }], prompts: ['Hello.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'stalled', exitCode: 'killed' }) },
];

contractSuites({
  title: 'opencode',
  cli: 'opencode',
  real,
  startMock: () => startMockOpenAI(),
  scenarios: SCENARIOS,
  fake: fakeShapes,
  realShapes,
});
