import type { Command } from 'commander';

/** `obra mcp`: Obra as an MCP server over stdio (`claude mcp add obra -- obra mcp`). */
export function register(program: Command): void {
  program
    .command('mcp')
    .description('serve Obra to an MCP client over stdio (tools submit_task, list_tasks, task_status, answer, diff, merge); e.g. claude mcp add obra -- obra mcp')
    .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
    .option('--config <file>', 'YAML config file (default: ./obra.yaml when present)')
    .option('--set <key=value>', 'override any config key of the tasks it submits (repeatable)', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .action(async (flags: { db?: string; config?: string; set: string[] }) => {
      const [{ resolve }, { configFrom }, { serveMcp }] = await Promise.all([import('node:path'), import('../config-from.js'), import('../../mcp/server.js')]);
      const config = configFrom({ config: flags.config, db: flags.db, set: flags.set });
      await serveMcp({ storeDir: resolve(config.store.dir), config, agentCommand: process.env.OBRA_CLAUDE_BIN });
    });
}
