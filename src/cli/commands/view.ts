import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_VIEWER_PORT, parsePort } from '../../inspector/listen.js';

/** `obra view [<runId>]`: the offline run viewer on 127.0.0.1. */
export function register(program: Command): void {
  program
    .command('view')
    .description('the board of tasks, or step through one run, in your browser, offline: states on the statecharts, events, backoff, scores, decisions, answers')
    .argument('[runId]', 'the run to show (default: the board of every task)')
    .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
    .option('--config <file>', 'YAML config file (default: ./obra.yaml when present)')
    .option('--port <n>', `the viewer's port on 127.0.0.1 (default ${DEFAULT_VIEWER_PORT}; 0 picks a free one)`, parsePort)
    .action(async (runId: string | undefined, flags: { db?: string; config?: string; port?: number }) => {
      const [{ loadConfig }, { RunStore }, { startViewerServer }] = await Promise.all([
        import('../../config/load.js'),
        import('../../store/run-store.js'),
        import('../../viewer/server.js'),
      ]);
      const storeDir = resolve(flags.db ?? loadConfig({ file: flags.config ?? null }).config.store.dir);
      // An unknown run is reported before anything listens.
      if (runId !== undefined) RunStore.open(storeDir, { create: false }).openRun(runId).close();
      const server = await startViewerServer({ storeDir, port: flags.port ?? DEFAULT_VIEWER_PORT });
      const url = runId === undefined ? server.url : server.runUrl(runId);
      process.stderr.write(`Viewer: ${url} — open it in a browser (served from this machine only; Ctrl-C stops it)\n`);
      await new Promise<void>((resolveStop) => {
        process.once('SIGINT', () => resolveStop());
        process.once('SIGTERM', () => resolveStop());
      });
      await server.close();
    });
}
