import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agents/agent.js';
import type { AgentCallRecord } from '../../src/core/types.js';

/**
 * What the Gemini CLI and Qwen Code contracts share: a scenario's calls in a scratch folder, the fakes' replies,
 * and the two suites — the scenarios against the fake, then against the real CLI and its stand-in model server,
 * whose shapes must equal the fake's.
 */

/** One scenario's "API" behaviour; each contract narrows it to what its CLI's stand-in can play. */
export type ScenarioApi = { text: string } | { write: string; text: string } | { shell: string; text: string } | { error: number } | { hang: true };

/** A scenario's API behaviour as a fake CLI's scripted reply. */
export const fakeReply = (api: ScenarioApi): unknown =>
  'write' in api ? { files: { [api.write]: 'written' }, text: api.text } : 'shell' in api ? { shell: [api.shell], text: api.text } : api;

/** What both contracts hold of a call, besides each one's reading of the answer. */
export interface CommonShape {
  outcome: string;
  /** What the CLI exited with; for a call Obra killed, what it did with the signal is not part of the contract. */
  exitCode: number | null | 'killed';
  denials: string[];
  files: string[];
  sessionId: string;
}

/** A call's common shape; `input` shows a denial's input (the real and the fake CLI may name a file differently). */
export function commonShapeOf(record: AgentCallRecord, workdir: string, input: (text: string) => string = (text) => text): CommonShape {
  return {
    outcome: record.outcome.kind,
    exitCode: record.outcome.kind === 'stalled' ? 'killed' : record.exitCode,
    denials: (record.permissionDenials ?? []).map((d) => `${d.tool} ${input(d.input)} → ${d.rule}`),
    files: ['written.txt', 'made-by-shell.txt'].filter((f) => existsSync(join(workdir, f))).map((f) => `${f}: ${readFileSync(join(workdir, f), 'utf8').trim()}`),
    sessionId: record.sessionId,
  };
}

/** Makes one call a prompt, in a scratch folder, on `session`: the first creates it, the later ones resume it. */
export async function driveCalls(kind: string, session: string, agentOf: (root: string, workdir: string) => Agent, prompts: string[]) {
  const root = mkdtempSync(join(tmpdir(), `obra-${kind}-contract-`));
  const workdir = join(root, 'work');
  mkdirSync(workdir);
  const agent = agentOf(root, workdir);
  const records: AgentCallRecord[] = [];
  for (const [i, prompt] of prompts.entries()) records.push(await agent.call({ runId: 'contract', index: 1, attempt: 1, prompt, sessionId: session, mode: i ? 'resume' : 'create', workdir }));
  return { records, workdir };
}

export interface Scenario<Api, Shape> {
  name: string;
  apis: Api[];
  prompts: string[];
  expect: (shapes: Shape[]) => void;
}

/** The contract's two suites: `title` names the CLI, `cli` its binary; the real one runs when `real.bin` is there. */
export function contractSuites<Api, Shape, Mock extends { close(): Promise<void> }>(c: {
  title: string;
  cli: string;
  real: { bin: string | null; version: string };
  startMock: () => Promise<Mock>;
  scenarios: Scenario<Api, Shape>[];
  fake: (scenario: Scenario<Api, Shape>) => Promise<Shape[]>;
  realShapes: (bin: string, mock: Mock, scenario: Scenario<Api, Shape>) => Promise<Shape[]>;
}) {
  let mock: Mock | null = null;
  beforeAll(async () => {
    if (c.real.bin) mock = await c.startMock();
  });
  afterAll(async () => {
    await mock?.close();
  });

  describe(`the ${c.title} contract: fixtures/fake-${c.cli}`, () => {
    for (const scenario of c.scenarios) it(scenario.name, async () => scenario.expect(await c.fake(scenario)));
  });

  describe.skipIf(!c.real.bin)(`the ${c.title} contract: the real ${c.cli} ${c.real.version}, the same shapes as the fake`, () => {
    for (const scenario of c.scenarios) {
      it(scenario.name, async () => {
        const got = await c.realShapes(c.real.bin!, mock!, scenario);
        scenario.expect(got);
        expect(got).toEqual(await c.fake(scenario));
      }, 120_000);
    }
  });
}
