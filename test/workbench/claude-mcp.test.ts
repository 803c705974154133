import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockAnthropic, type MockAnthropic, type RecordedRequest } from '../../fixtures/mock-anthropic/server.js';
import { RunStore } from '../../src/store/run-store.js';
import { CLI } from '../helpers/cli.js';
import { realClaudeOrSkip, realEnv } from '../real-cli/real-claude.js';

/**
 * The real Claude Code CLI with `--mcp-config` pointing at `obra mcp`, driven by the local stand-in model
 * (fixtures/mock-anthropic) to call mcp__obra__submit_task: the task appears in Obra's store.
 */

const real = await realClaudeOrSkip();
let mock: MockAnthropic;

beforeAll(async () => {
  if (!real.claude) return;
  mock = await startMockAnthropic();
});
afterAll(async () => {
  await mock?.close();
});

describe.skipIf(!real.claude)(`Claude Code ${real.claude?.version ?? ''} hands a task to obra mcp`, () => {
  it('calls mcp__obra__submit_task; the task is queued in the store', { timeout: 120_000 }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'obra-claude-mcp-'));
    const project = join(root, 'project');
    mkdirSync(project);
    const storeDir = join(root, 'store');
    const mcpConfig = join(root, 'mcp.json');
    writeFileSync(mcpConfig, JSON.stringify({ mcpServers: { obra: { command: process.execPath, args: [CLI, 'mcp', '--db', storeDir] } } }));
    // The model's answer to the prompt is the tool call; to the tool's result (the next user message), a last word.
    mock.script((request: RecordedRequest) =>
      request.lastUserText.includes('Hand the README task to Obra')
        ? { toolUse: { name: 'mcp__obra__submit_task', input: { task: 'Write a README for the project', repo: project, priority: 3 } } }
        : 'Handed to Obra.',
    );
    const claude = await execa(
      real.claude!.bin,
      ['-p', 'Hand the README task to Obra.', '--output-format', 'json', '--mcp-config', mcpConfig, '--strict-mcp-config', '--allowedTools', 'mcp__obra__submit_task'],
      { cwd: project, env: realEnv(join(root, 'home'), mock.url), extendEnv: false, reject: false, timeout: 90_000 },
    );
    expect(claude.exitCode, claude.stderr).toBe(0);
    expect((JSON.parse(claude.stdout) as { result: string }).result).toBe('Handed to Obra.');
    const store = RunStore.open(storeDir, { create: false });
    const [runId] = store.listRunIds();
    expect(store.listRunIds()).toHaveLength(1);
    const { status, file } = store.peekStatus(runId!);
    expect([status, file.task.text, file.task.workdir, file.queue?.priority]).toEqual(['queued', 'Write a README for the project', project, 3]);
  });
});
