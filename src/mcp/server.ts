import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { z } from 'zod';
import { AGENT_KINDS } from '../core/agent-kinds.js';
import type { ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { BackgroundDrives } from '../workbench/drives.js';

/**
 * `obra mcp`: Obra as an MCP server over stdio (the official SDK), so that a Claude Code of one's own, or any MCP
 * client, can hand tasks to Obra and follow them. Each tool calls the function the CLI and the HTTP API call
 * (src/workbench/); a refusal is the same one line, as a tool error. Answered runs are driven on in this process.
 * What a tool uses is loaded when it is first called: the client waits for nothing but the SDK at start-up.
 */

const actions = () => import('../workbench/actions.js');
const runStore = async (storeDir: string) => (await import('../store/run-store.js')).RunStore.open(storeDir, { create: false });

export interface McpOptions {
  storeDir: string;
  config: ObraConfig;
  /** Where a task's relative `repo` is resolved (default: the current directory, the client's project). */
  cwd?: string;
  agentCommand?: string;
}

type ToolResult = { content: { type: 'text'; text: string }[]; isError?: boolean };

export function obraMcpServer(options: McpOptions): { server: McpServer; close: () => Promise<void> } {
  const { storeDir, config } = options;
  const server = new McpServer({ name: 'obra', version: '0.1.0' });
  let drives: BackgroundDrives | null = null;
  const drivesOf = async () => {
    const { BackgroundDrives } = await import('../workbench/drives.js');
    return (drives ??= new BackgroundDrives({
      storeDir,
      config,
      agentCommand: options.agentCommand,
      onError: (runId, error) => process.stderr.write(`obra mcp: run ${runId}: ${(error as Error)?.message ?? String(error)}\n`),
      notify: { onWarning: (line) => process.stderr.write(`obra mcp: WARNING ${line}\n`) },
    }));
  };
  const taskLines = async () => (await import('../queue/board.js')).taskLines((await runStore(storeDir)).dir);

  server.registerTool(
    'submit_task',
    {
      description: 'Queue a coding task for Obra (`obra work` drives the queue); answers its runId (for a race: the race id and its attempts\' runIds). In a git repository the task gets a worktree and a branch obra/<runId> of its own.',
      inputSchema: {
        task: z.string().describe('what the agent should do'),
        repo: z.string().optional().describe('the folder the task works on (default: the current one)'),
        base: z.string().optional().describe("what the task's branch starts from (default: the repository's HEAD)"),
        agent: z.string().optional().describe('the agent: claude, codex, gemini, qwen or opencode (or the path of the configured kind\'s binary)'),
        agents: z.array(z.enum(AGENT_KINDS)).optional().describe('a race: the same task once per agent; when the last attempt ends the evidence picks the winner (merge the race id to land it)'),
        attempts: z.number().int().min(1).optional().describe('a race: attempts per agent (with no agents: of the task\'s own agent)'),
        checks: z.array(z.string()).optional().describe('shell commands that must pass for the task to be done'),
        priority: z.number().int().optional().describe('higher goes first (default 0)'),
        after: z.string().optional().describe('a runId this task starts after (once that one is done)'),
      },
    },
    (args) => reply(async () => {
      const entry = Object.fromEntries(Object.entries(args).filter(([, value]) => value !== undefined));
      return (await actions()).submitEntry(entry, { storeDir, config, cwd: options.cwd });
    }),
  );
  server.registerTool('list_tasks', { description: "Every task of Obra's store, one line each: status, state, iteration, last decision, cost, what it waits for." }, () =>
    reply(async () => ({ tasks: await taskLines() })),
  );
  server.registerTool('task_status', { description: "One task's line, and the question it waits on, if any.", inputSchema: { runId: z.string() } }, ({ runId }) =>
    reply(async () => {
      const { file } = (await runStore(storeDir)).peekStatus(runId);
      const line = (await taskLines()).find((l) => l.runId === runId);
      if (!line) throw new UserError(`no run "${runId}" in ${storeDir} — list_tasks lists the runs there`);
      return { ...line, question: file.question };
    }),
  );
  server.registerTool(
    'answer',
    {
      description: 'Answer a task that waits for a human; `allow` grants Claude Code permission rules (e.g. "Write", "Bash(npm test)") for the rest of the run. The task goes on at once.',
      inputSchema: { runId: z.string(), answer: z.string().optional(), allow: z.array(z.string()).optional() },
    },
    ({ runId, answer, allow }) => reply(async () => (await drivesOf()).answer(runId, answer ?? '', allow ?? [])),
  );
  server.registerTool('diff', { description: "The task's changes against the commit it started from (a unified diff).", inputSchema: { runId: z.string() } }, ({ runId }) =>
    reply(async () => (await actions()).diffRun(runId, storeDir)),
  );
  server.registerTool(
    'merge',
    {
      description:
        "Merge the task's branch into its base branch in the user's checkout (refused when dirty). On a conflict: refused, or with `resolve: true` (default: the config's merge.resolve) a task that resolves it is queued; merging again once that task is done lands it.",
      inputSchema: { runId: z.string(), resolve: z.boolean().optional() },
    },
    ({ runId, resolve }) => reply(async () => (await actions()).mergeRun(runId, storeDir, { resolve: resolve === undefined ? config.merge.resolve : resolve ? 'agent' : 'human' })),
  );
  return { server, close: async () => drives?.close() };
}

/** A tool's answer: its result as JSON text, or the one-line refusal as a tool error. */
async function reply(work: () => Promise<unknown>): Promise<ToolResult> {
  try {
    return { content: [{ type: 'text', text: JSON.stringify(await work()) }] };
  } catch (error) {
    const message = error instanceof UserError ? error.message : `internal error: ${(error as Error)?.message ?? String(error)}`;
    return { content: [{ type: 'text', text: message }], isError: true };
  }
}

/** Serves on stdin/stdout until the client closes them (or a signal); the runs it drives are saved on the way out. */
export async function serveMcp(options: McpOptions): Promise<void> {
  const { server, close } = obraMcpServer(options);
  const closed = new Promise<void>((resolve) => {
    server.server.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await server.connect(new StdioServerTransport());
  // Loaded now, while the client reads the tools: the first submit_task does not wait for the engine's modules.
  setImmediate(() => void Promise.all([actions(), import('../queue/board.js'), import('../workbench/drives.js')]).catch(() => {}));
  await closed;
  await close();
  await server.close();
}
