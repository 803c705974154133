import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store.js';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';
import { gitOut, gitRepo } from '../queue/helpers.js';

/** `obra mcp` driven by the SDK's own client over stdio, as Claude Code would: list the tools, submit, follow, answer, diff, merge. */

type ToolReply = { content: { type: string; text: string }[]; isError?: boolean };

async function connect(cwd: string, env: Record<string, string>, storeDir: string) {
  const client = new Client({ name: 'obra-test', version: '1.0.0' });
  const stderr: string[] = [];
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'mcp', '--db', storeDir], cwd, env: { ...env, PATH: process.env.PATH ?? '' }, stderr: 'pipe' });
  transport.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  await client.connect(transport);
  const call = async (name: string, args: Record<string, unknown> = {}) => {
    const result = (await client.callTool({ name, arguments: args })) as ToolReply;
    const text = result.content[0]!.text;
    return { isError: Boolean(result.isError), text, json: result.isError ? null : (JSON.parse(text) as Record<string, unknown>) };
  };
  return { client, call, stderr };
}

describe('obra mcp', () => {
  it('lists its tools, submits a task, reports its status, answers it, shows its diff and merges it', async () => {
    const box = sandbox();
    const replies = [
      { result: 'I need to run the script.\nSTATUS: CONTINUE', bash: ['printf x > done.txt'] },
      { result: 'Ran it.\nSTATUS: DONE', bash: ['printf x > done.txt'] },
    ];
    const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), FAKE_CLAUDE_REPLY_BY: 'turn' };
    const repo = await gitRepo(join(box.dir, 'repo'));
    const storeDir = join(box.dir, 'store');
    const mcp = await connect(repo, env, storeDir);
    try {
      const { tools } = await mcp.client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['answer', 'diff', 'list_tasks', 'merge', 'submit_task', 'task_status']);
      expect(Object.keys((tools.find((t) => t.name === 'submit_task')!.inputSchema as { properties: object }).properties).sort()).toEqual(['after', 'agent', 'agents', 'attempts', 'base', 'checks', 'priority', 'repo', 'task']);

      // Before any task: the store is missing, said in one line.
      expect(await mcp.call('list_tasks')).toEqual({ isError: true, text: `no Obra store at ${storeDir} — run or submit a task first (\`obra run\`, \`obra submit\`), or point --db at the right folder`, json: null });
      expect((await mcp.call('submit_task', { task: ' ' })).text).toBe('the task is empty — say what the agent should do');

      const started = performance.now();
      const submitted = await mcp.call('submit_task', { task: 'Run the script', checks: ['test -f done.txt'], priority: 1 });
      const submitMs = performance.now() - started;
      process.stderr.write(`obra mcp: submit_task answered in ${submitMs.toFixed(0)} ms\n`);
      const runId = submitted.json!.runId as string;
      expect(RunStore.open(storeDir, { create: false }).peekStatus(runId).file.task.text).toBe('Run the script');
      expect(await gitOut(repo, 'branch', '--format=%(refname:short)')).toBe(`main\nobra/${runId}`);

      const queued = await mcp.call('task_status', { runId });
      expect(queued.json).toMatchObject({ runId, status: 'queued', task: 'Run the script', priority: 1, question: null });
      expect((await mcp.call('list_tasks')).json!.tasks).toEqual([expect.objectContaining({ runId, status: 'queued' })]);
      expect((await mcp.call('task_status', { runId: 'nope' })).text).toBe(`no run "nope" in ${storeDir} — \`obra runs\` lists the runs there`);

      const worked = await obra(['work', '--until-idle', '--db', storeDir], { cwd: repo, env });
      expect(worked.exitCode, worked.stderr).toBe(3);
      const waiting = await mcp.call('task_status', { runId });
      expect(waiting.json).toMatchObject({ runId, status: 'escalated' });
      expect(waiting.json!.question).toContain('Bash');

      expect(await mcp.call('answer', { runId, answer: 'Go ahead.', allow: ['Bash(printf x > done.txt)'] })).toEqual({
        isError: false,
        text: JSON.stringify({ runId, status: 'running', message: `answered run ${runId}; it goes on` }),
        json: { runId, status: 'running', message: `answered run ${runId}; it goes on` },
      });
      await waitFor(async () => (await mcp.call('task_status', { runId })).json!.status === 'done', { what: 'the answered task to be done', timeoutMs: 30_000 });

      expect((await mcp.call('diff', { runId })).json!.diff).toContain('+++ b/done.txt');
      const merged = await mcp.call('merge', { runId });
      expect(merged.json!.message).toBe(`merged obra/${runId} into main in ${repo} (${(merged.json!.commit as string).slice(0, 12)})`);
      expect(await gitOut(repo, 'ls-tree', '--name-only', 'main')).toBe('README.md\ndone.txt');
      expect(mcp.stderr.join('')).toBe('');
    } finally {
      await mcp.client.close();
    }
  });
});
