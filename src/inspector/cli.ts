import type { Command } from 'commander';
import type { InspectionEvent } from 'xstate';
import { UserError } from '../core/errors.js';
import { DEFAULT_INSPECTOR_PORT, parsePort } from './listen.js';
import type { InspectorServer } from './server.js';

/** `--inspect` and `--port` of `run`, `resume`, `answer`, `demo` (and `replay`). */
export interface InspectFlags {
  inspect?: boolean;
  inspectWait?: boolean;
  port?: number;
}

export function withInspectOptions(command: Command): Command {
  return command
    .option('--inspect', 'serve the run to the Stately inspector on 127.0.0.1 (open the URL it prints)')
    .option('--inspect-wait', 'like --inspect, but start only once an inspector page is connected (to watch it all live)')
    .option('--port <n>', `the inspector's port (default ${DEFAULT_INSPECTOR_PORT}; 0 picks a free one)`, parsePort);
}

export interface CliInspection {
  server: InspectorServer;
  inspect: (event: InspectionEvent) => void;
  /**
   * Ends inspection. With `hold` (an interactive terminal and a finished run) the page stays served until
   * Ctrl-C, so a person who opens it after a short run still sees all of it.
   */
  finish(options: { hold: boolean }): Promise<void>;
}

/** Starts the inspector for a CLI command when `--inspect` was given (a taken port is a `UserError`). */
export async function startCliInspection(flags: InspectFlags, out: NodeJS.WritableStream = process.stderr): Promise<CliInspection | null> {
  if (!flags.inspect && !flags.inspectWait) return null;
  // Loaded only when asked for: a plain run does not pay for the WebSocket server and the converter.
  const { startInspectorServer } = await import('./server.js');
  const server = await startInspectorServer({ port: flags.port ?? DEFAULT_INSPECTOR_PORT });
  out.write(
    `Inspector: ${server.url} — open it in a browser to follow the run in the Stately inspector ` +
      '(that page loads from stately.ai; `obra view` works offline)\n',
  );
  if (flags.inspectWait) {
    out.write('Waiting for the inspector page to connect (Ctrl-C to give up)…\n');
    const giveUp = new AbortController();
    const onInterrupt = () => giveUp.abort();
    process.once('SIGINT', onInterrupt);
    try {
      await server.waitForViewer(giveUp.signal);
    } catch {
      await server.close();
      throw new UserError('interrupted while waiting for the inspector page; nothing was run', 130);
    } finally {
      process.off('SIGINT', onInterrupt);
    }
  }
  return {
    server,
    inspect: server.inspect,
    async finish({ hold }) {
      if (hold) {
        out.write(`The inspector keeps serving the run at ${server.url} — press Ctrl-C to quit.\n`);
        await new Promise<void>((resolveHold) => process.once('SIGINT', () => resolveHold()));
      }
      await server.close();
    },
  };
}

/** A person is watching: keep the inspector open after the run only then (never in scripts and CI). */
export function isInteractive(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY) && !process.env.CI;
}
