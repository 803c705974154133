import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_VIEWER_PORT, LOCAL_HOST, parsePort } from '../../inspector/listen.js';

/** `obra view [<runId>]`: the board and the run viewer, with the API that acts on the tasks (127.0.0.1 unless --bind). */
export function register(program: Command): void {
  program
    .command('view')
    .description('the workbench in your browser: the board of tasks (queue one, answer, allow a tool, pause, retry, review the diff, merge; followed live), or step through one run on its statecharts; and an HTTP API to act on the tasks')
    .argument('[runId]', 'the run to show (default: the board of every task)')
    .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
    .option('--config <file>', 'YAML config file (default: ./obra.yaml when present)')
    .option('--port <n>', `the viewer's port (default ${DEFAULT_VIEWER_PORT}; 0 picks a free one)`, parsePort)
    .option('--bind <ip>', `the address it listens on (default ${LOCAL_HOST}; 0.0.0.0 serves the network, every request then needs the token)`)
    .option('--set <key=value>', 'override any config key of the tasks submitted through the API (repeatable)', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .action(async (runId: string | undefined, flags: { db?: string; config?: string; port?: number; bind?: string; set: string[] }) => {
      const [{ configFrom }, { RunStore }, { startViewerServer }] = await Promise.all([
        import('../config-from.js'),
        import('../../store/run-store.js'),
        import('../../viewer/server.js'),
      ]);
      const config = configFrom({ config: flags.config, db: flags.db, set: flags.set });
      const storeDir = resolve(config.store.dir);
      // An unknown run is reported before anything listens.
      if (runId !== undefined) RunStore.open(storeDir, { create: false }).openRun(runId).close();
      const host = flags.bind ?? LOCAL_HOST;
      const server = await startViewerServer({ storeDir, port: flags.port ?? DEFAULT_VIEWER_PORT, host, config, agentCommand: process.env.OBRA_CLAUDE_BIN, notify: true });
      const url = `${runId === undefined ? server.url : server.runUrl(runId)}?token=${server.token}`;
      const local = server.url.startsWith(`http://${LOCAL_HOST}:`) || server.url.startsWith('http://localhost:') || server.url.startsWith('http://[::1]:');
      if (!local) {
        process.stderr.write(
          `obra: WARNING the viewer listens on ${host}, beyond this machine: anyone who reaches port ${server.port} can try it — every request needs the token, so keep the URL below secret (an SSH tunnel to 127.0.0.1 is safer; the traffic is not encrypted)\n`,
        );
      }
      process.stderr.write(`Viewer: ${url} — open it in a browser (${local ? 'served from this machine only' : `served on ${host}`}; the token in it lets the page act on the tasks; Ctrl-C stops it)\n`);
      await new Promise<void>((resolveStop) => {
        process.once('SIGINT', () => resolveStop());
        process.once('SIGTERM', () => resolveStop());
      });
      await server.close();
    });
}
