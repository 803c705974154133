import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { startMockOpenAI, type MockOpenAI, type MockOpenAIReply } from '../../fixtures/mock-openai/server.js';
import { QwenAgent } from '../../src/agents/qwen/qwen-agent.js';
import { SessionLocks } from '../../src/agents/session-lock.js';
import type { AgentCallRecord } from '../../src/core/types.js';
import { realAgentCliOrSkip } from './real-agent-cli.js';
import { commonShapeOf, contractSuites, driveCalls, fakeReply, type CommonShape, type Scenario } from './same-shapes.js';

/**
 * Qwen Code's contract: the same scenarios through QwenAgent against fixtures/fake-qwen and the real `qwen` binary
 * pointed at fixtures/mock-openai's Chat Completions endpoint (`--auth-type openai`, the memory-extraction call
 * off). A 429 is retried in silence for minutes (measured), so it is a stall for Obra's watchdog here too. The
 * 500 after retries (`[API Error: 500 …]` as the answer's text, exit 0) takes a minute or more on the real CLI
 * whatever its settings: it is held to the real sample in test/agents/qwen-agent.test.ts instead.
 */

const FAKE = resolve(import.meta.dirname, '../../fixtures/fake-qwen');
const real = await realAgentCliOrSkip('qwen');

type Api = { text: string } | { write: string; text: string } | { shell: string; text: string } | { error: 429 } | { hang: true };
const SESSION = '6f1c0000-0000-4000-8000-0000000000bb';
const idleFor = (apis: Api[]) => (apis.some((a) => 'hang' in a || 'error' in a) ? 3_000 : 60_000);

interface Shape extends CommonShape {
  isError?: boolean;
  answer?: string;
}

function shapeOf(record: AgentCallRecord, workdir: string): Shape {
  const result = record.outcome.kind === 'answer' ? record.outcome.result : null;
  return {
    ...commonShapeOf(record, workdir, (input) => input.replace(workdir, '<cwd>')),
    ...(result ? { isError: result.is_error, answer: result.result.trim() } : {}),
  };
}

async function drive(agentOf: (root: string, workdir: string, apis: Api[]) => QwenAgent, apis: Api[], prompts: string[]) {
  const { records, workdir } = await driveCalls('qwen', SESSION, (root, workdir) => agentOf(root, workdir, apis), prompts);
  return records.map((r) => shapeOf(r, workdir));
}

const fakeAgent = (root: string, _workdir: string, apis: Api[]) =>
  new QwenAgent({ command: FAKE, timeoutMs: 30_000, idleTimeoutMs: idleFor(apis), killGraceMs: 300, locks: new SessionLocks(join(root, 'locks')), env: { HOME: root, FAKE_QWEN_REPLIES: JSON.stringify(apis.map(fakeReply)) } });

function realAgent(bin: string, mock: MockOpenAI) {
  return (root: string, workdir: string, apis: Api[]) => {
    mock.script(apis.map((api): MockOpenAIReply => ('write' in api ? { write: { path: join(workdir, api.write), content: 'written' }, text: api.text } : 'error' in api ? { error: api.error, retryAfterS: 0 } : api)));
    mkdirSync(join(root, '.qwen'));
    writeFileSync(join(root, '.qwen/settings.json'), JSON.stringify({ memory: { enableManagedAutoMemory: false } }));
    return new QwenAgent({
      command: bin,
      timeoutMs: 90_000,
      idleTimeoutMs: idleFor(apis),
      killGraceMs: 300,
      extraArgs: ['--auth-type', 'openai'],
      locks: new SessionLocks(join(root, 'locks')),
      env: { HOME: root, OPENAI_BASE_URL: mock.url, OPENAI_API_KEY: 'dummy', OPENAI_MODEL: 'mock-model' },
    });
  };
}

const SCENARIOS: Scenario<Api, Shape>[] = [
  { name: 'a plain answer', apis: [{ text: 'Plain answer.\nSTATUS: DONE' }], prompts: ['Say something.'], expect: ([s]) => expect(s).toEqual({ outcome: 'answer', isError: false, answer: 'Plain answer.\nSTATUS: DONE', exitCode: 0, denials: [], files: [], sessionId: SESSION }) },
  { name: 'a file written in the working directory', apis: [{ write: 'written.txt', text: 'Wrote it.\nSTATUS: DONE' }], prompts: ['Write written.txt.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, files: ['written.txt: written'] }) },
  {
    name: 'a second call resumes the named session (-r)',
    apis: [{ text: 'Remembered.\nSTATUS: CONTINUE' }, { text: 'It was PINEAPPLE.\nSTATUS: DONE' }],
    prompts: ['Remember the word PINEAPPLE.', 'Which word?'],
    expect: (shapes) => expect(shapes.map((s) => [s.outcome, s.sessionId, s.answer])).toEqual([['answer', SESSION, 'Remembered.\nSTATUS: CONTINUE'], ['answer', SESSION, 'It was PINEAPPLE.\nSTATUS: DONE']]),
  },
  {
    name: 'a shell command is declined under the default auto-edit: one denial, the turn goes on',
    apis: [{ shell: 'touch made-by-shell.txt', text: 'Tried.\nSTATUS: DONE' }],
    prompts: ['Run touch.'],
    expect: ([s]) => expect(s).toMatchObject({ outcome: 'answer', exitCode: 0, files: [], denials: ['run_shell_command touch made-by-shell.txt → Bash'] }),
  },
  { name: '429: retried in silence, stalled by the watchdog', apis: [{ error: 429 }], prompts: ['Hello.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'stalled', exitCode: 'killed' }) },
  { name: 'a hang: stalled by the watchdog', apis: [{ hang: true }], prompts: ['Hello.'], expect: ([s]) => expect(s).toMatchObject({ outcome: 'stalled', exitCode: 'killed' }) },
];

contractSuites({
  title: 'Qwen Code',
  cli: 'qwen',
  real,
  startMock: () => startMockOpenAI(),
  scenarios: SCENARIOS,
  fake: (scenario) => drive(fakeAgent, scenario.apis, scenario.prompts),
  realShapes: (bin, mock: MockOpenAI, scenario) => drive(realAgent(bin, mock), scenario.apis, scenario.prompts),
});
