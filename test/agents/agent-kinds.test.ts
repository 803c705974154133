import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentFor, agentFromSpec, agentSpecOf } from '../../src/agents/agent-for.js';
import { ClaudeCodeAgent } from '../../src/agents/claude-code-agent.js';
import { CodexAgent } from '../../src/agents/codex/codex-agent.js';
import { OpencodeAgent } from '../../src/agents/opencode/opencode-agent.js';
import { claudeTokens, priceFor, withEstimatedCost } from '../../src/agents/usage.js';
import { loadConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { UserError } from '../../src/core/errors.js';
import type { AgentResult } from '../../src/core/types.js';
import { readTasksFile } from '../../src/queue/tasks-file.js';
import { FAKE_CLAUDE, obra, ROOT, sandbox } from '../helpers/cli.js';

const FAKE_CODEX = join(ROOT, 'fixtures/fake-codex');
const FAKE_OPENCODE = join(ROOT, 'fixtures/fake-opencode');

describe('agent.kind: one factory for every agent CLI', () => {
  it('defaults to claude; OBRA_AGENT__KIND and the file choose another; an unknown kind is one line naming the kinds', () => {
    expect(configSchema.parse({}).agent.kind).toBe('claude');
    expect(loadConfig({ env: { OBRA_AGENT__KIND: 'codex' }, cwd: '/' }).config.agent.kind).toBe('codex');
    expect(() => loadConfig({ env: { OBRA_AGENT__KIND: 'cursor' }, cwd: '/' })).toThrow(
      'config key "agent.kind" (from env OBRA_AGENT__KIND): expected one of claude, codex, gemini, qwen, opencode — got "cursor"',
    );
  });

  it('builds the agent of the kind from its own section; shared timeouts unless the section sets its own', () => {
    const config = configSchema.parse({ agent: { local: { timeout: 120, idle_timeout: 30 }, codex: { command: '/opt/codex', model: 'gpt-5.5', sandbox: 'read-only', idle_timeout: 45 } } });
    const codex = agentFor('codex', config);
    expect(codex).toBeInstanceOf(CodexAgent);
    expect((codex as CodexAgent).options).toMatchObject({ command: '/opt/codex', model: 'gpt-5.5', sandbox: 'read-only', timeoutMs: 120_000, idleTimeoutMs: 45_000 });
    expect(agentFor('claude', config)).toBeInstanceOf(ClaudeCodeAgent);
    const opencode = agentFor('opencode', configSchema.parse({ agent: { opencode: { model: 'mock/mock-model', permission_mode: 'read-only', timeout: 60 } } }));
    expect(opencode).toBeInstanceOf(OpencodeAgent);
    expect((opencode as OpencodeAgent).options).toMatchObject({ command: 'opencode', model: 'mock/mock-model', permissionMode: 'read-only', timeoutMs: 60_000 });
    expect(loadConfig({ env: { OBRA_OPENCODE_BIN: '/opt/opencode' }, cwd: '/' }).config.agent.opencode).toMatchObject({ command: '/opt/opencode', permission_mode: 'edit' });
  });

  it('the run file\'s spec rebuilds the same agent; an old spec without a kind is Claude Code; a binary given on resume replaces the stored one', () => {
    const config = configSchema.parse({});
    const spec = agentSpecOf(agentFor('codex', config, { command: '/bin/codex-1', env: { CODEX_HOME: '/h' } }));
    expect(spec).toEqual({ name: 'codex', kind: 'codex', command: '/bin/codex-1', env: { CODEX_HOME: '/h' } });
    const again = agentFromSpec(spec, config, { claude: '/bin/claude-2' }, 'r1') as CodexAgent;
    expect(again.options.command).toBe('/bin/codex-1');
    expect((agentFromSpec(spec, config, { codex: '/bin/codex-2' }, 'r1') as CodexAgent).options.command).toBe('/bin/codex-2');
    expect(agentFromSpec({ name: 'claude-code', command: '/bin/claude' }, config, undefined, 'r1')).toBeInstanceOf(ClaudeCodeAgent);
    expect(() => agentFromSpec({ name: 'scripted' }, config, undefined, 'r9')).toThrow('run r9 was driven by the in-process agent "scripted"');
  });
});

describe('tokens and cost, the same fields for every agent', () => {
  it("Claude's result: every prompt token counts as input, cache reads as cached, the CLI's own cost", () => {
    const result = { usage: { input_tokens: 10, cache_creation_input_tokens: 200, cache_read_input_tokens: 3000, output_tokens: 5 }, total_cost_usd: 0.0123 } as unknown as AgentResult;
    expect(claudeTokens(result)).toEqual({ inputTokens: 3210, outputTokens: 5, cachedInputTokens: 3000, costUsd: 0.0123, costSource: 'reported' });
  });

  it('a price table by model, then by kind; cached input at its own price', () => {
    const prices = { 'gpt-5.5': { input: 1.25, output: 10, cached_input: 0.125 }, codex: { input: 9, output: 9 } };
    expect(priceFor(prices, 'gpt-5.5', 'codex')).toBe(prices['gpt-5.5']);
    expect(priceFor(prices, 'other', 'codex')).toBe(prices.codex);
    expect(priceFor(prices, undefined, 'gemini')).toBeNull();
    expect(withEstimatedCost({ inputTokens: 1_000_000, cachedInputTokens: 400_000, outputTokens: 100_000 }, prices['gpt-5.5'])).toEqual({
      inputTokens: 1_000_000, cachedInputTokens: 400_000, outputTokens: 100_000, costUsd: 0.6 * 1.25 + 0.4 * 0.125 + 0.1 * 10, costSource: 'estimate',
    });
  });
});

describe('choosing the agent from the command line and per task', () => {
  it('`obra run --agent codex` drives Codex on one thread; the run file records the kind', async () => {
    const s = sandbox();
    const codexHome = join(s.dir, '.codex');
    mkdirSync(codexHome);
    const env = { ...s.env, CODEX_HOME: codexHome, FAKE_CODEX_REPLIES: JSON.stringify(['Working on it, more to do.\nSTATUS: CONTINUE', 'All done, the task is complete.\nSTATUS: DONE']) };
    const run = await obra(['run', '--agent', 'codex', '--agent-bin', FAKE_CODEX, '--task', 'Do it', '--json', '--max-iterations', '3', '--set', 'decision.min_confidence=0'], { cwd: s.dir, env });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { runId: string; status: string };
    const runDir = join(s.dir, '.obra/runs', result.runId);
    const runFile = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as { agent: unknown; config: { agent: { kind: string } } };
    expect(runFile.agent).toEqual({ name: 'codex', kind: 'codex', command: FAKE_CODEX });
    expect(runFile.config.agent.kind).toBe('codex');
    type Line = { agent: { argv: string[]; sessionId: string; tokens: { costSource: string; inputTokens: number } } };
    const records = readFileSync(join(runDir, 'iterations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
    expect(records).toHaveLength(2);
    expect(records[0]!.agent.argv.slice(0, 3)).toEqual([FAKE_CODEX, 'exec', '--json']);
    expect(records[0]!.agent.argv.at(-1)).toBe('-');
    // The second iteration resumes the thread Codex named in the first.
    expect(records[1]!.agent.argv.slice(-3)).toEqual(['resume', records[0]!.agent.sessionId, '-']);
    expect(records[1]!.agent.sessionId).toBe(records[0]!.agent.sessionId);
    expect(records.map((r) => r.agent.tokens.costSource)).toEqual(['unknown', 'unknown']);
    expect(records[0]!.agent.tokens.inputTokens).toBeGreaterThan(1000);
  });

  it('`obra run --agent opencode` drives opencode on one session (its own id, resumed with -s); the run file records the kind', async () => {
    const s = sandbox();
    const env = { ...s.env, FAKE_OPENCODE_REPLIES: JSON.stringify(['Working on it, more to do.\nSTATUS: CONTINUE', 'All done, the task is complete.\nSTATUS: DONE']) };
    const run = await obra(['run', '--agent', 'opencode', '--agent-bin', FAKE_OPENCODE, '--task', 'Do it', '--json', '--max-iterations', '3', '--set', 'decision.min_confidence=0'], { cwd: s.dir, env });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { runId: string };
    const runDir = join(s.dir, '.obra/runs', result.runId);
    expect((JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as { agent: unknown }).agent).toEqual({ name: 'opencode', kind: 'opencode', command: FAKE_OPENCODE });
    type Line = { agent: { argv: string[]; sessionId: string; tokens: { costSource: string; inputTokens: number } } };
    const records = readFileSync(join(runDir, 'iterations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line);
    expect(records).toHaveLength(2);
    expect(records[0]!.agent.argv.slice(1)).toEqual(['run', '--format', 'json']);
    expect(records[0]!.agent.sessionId).toMatch(/^ses_/);
    expect(records[1]!.agent.argv.slice(-2)).toEqual(['-s', records[0]!.agent.sessionId]);
    expect(records[1]!.agent.sessionId).toBe(records[0]!.agent.sessionId);
    expect(records[0]!.agent.tokens).toMatchObject({ costSource: 'unknown' });
  });

  it.each([
    ['gemini', join(ROOT, 'fixtures/fake-gemini'), 'FAKE_GEMINI_REPLIES', '-r'],
    ['qwen', join(ROOT, 'fixtures/fake-qwen'), 'FAKE_QWEN_REPLIES', '-r'],
  ])('`obra run --agent %s` names the session up front and resumes it', async (kind, fake, variable, resumeFlag) => {
    const s = sandbox();
    const env = { ...s.env, [variable]: JSON.stringify(['Working on it, more to do.\nSTATUS: CONTINUE', 'All done, the task is complete.\nSTATUS: DONE']) };
    const run = await obra(['run', '--agent', kind, '--agent-bin', fake, '--task', 'Do it', '--json', '--max-iterations', '3', '--set', 'decision.min_confidence=0'], { cwd: s.dir, env });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { runId: string; sessionId: string };
    const runDir = join(s.dir, '.obra/runs', result.runId);
    expect((JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as { agent: unknown }).agent).toEqual({ name: kind, kind, command: fake });
    const records = readFileSync(join(runDir, 'iterations.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { agent: { argv: string[]; sessionId: string } });
    expect(records.map((r) => r.agent.sessionId)).toEqual([result.sessionId, result.sessionId]);
    expect(records[0]!.agent.argv.slice(-2)).toEqual(['--session-id', result.sessionId]);
    expect(records[1]!.agent.argv.slice(-2)).toEqual([resumeFlag, result.sessionId]);
  });

  it('--agent with an unknown kind: exit 2, one line naming the kinds', async () => {
    const s = sandbox();
    const r = await obra(['run', '--agent', 'cursor', '--task', 'x'], { cwd: s.dir, env: s.env });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.trim()).toBe('obra: --agent: "cursor" is not one of claude, codex, gemini, qwen, opencode');
  });

  it('`agent:` per task in a tasks file and `obra submit --agent`: each queued run records its own kind', async () => {
    const s = sandbox();
    const file = join(s.dir, 'tasks.yaml');
    writeFileSync(file, '- task: with the default\n- task: with codex\n  agent: codex\n');
    expect(readTasksFile(file).map((t) => t.agentKind)).toEqual([undefined, 'codex']);
    const bad = join(s.dir, 'bad.yaml');
    writeFileSync(bad, '- task: x\n  agent: cursor\n');
    expect(() => readTasksFile(bad)).toThrow(`${bad}:2: task 1: agent: expected one of claude, codex, gemini, qwen, opencode`);

    mkdirSync(join(s.dir, 'a'));
    mkdirSync(join(s.dir, 'b'));
    writeFileSync(file, '- task: with the default\n  repo: a\n- task: with codex\n  repo: b\n  agent: codex\n');
    const env = { ...s.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE };
    const fromFile = await obra(['submit', '--file', file, '--json'], { cwd: s.dir, env });
    expect(fromFile.exitCode, fromFile.stderr).toBe(0);
    mkdirSync(join(s.dir, 'c'));
    const fromFlag = await obra(['submit', '--task', 'flag', '--repo', 'c', '--agent', 'codex', '--json'], { cwd: s.dir, env });
    expect(fromFlag.exitCode, fromFlag.stderr).toBe(0);
    const kinds = readdirSync(join(s.dir, '.obra/runs'))
      .map((id) => JSON.parse(readFileSync(join(s.dir, '.obra/runs', id, 'run.json'), 'utf8')) as { task: { text: string }; agent: { kind?: string } })
      .map((f) => `${f.task.text}: ${f.agent.kind}`)
      .sort();
    expect(kinds).toEqual(['flag: codex', 'with codex: codex', 'with the default: claude']);
  });
});
