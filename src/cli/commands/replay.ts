import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parsePort } from '../../inspector/listen.js';
import type { ReplayResult, ReplayStep } from '../../replay/replay.js';
import { parseUntil } from '../../replay/until.js';
import { engineOption, positiveNumberOption } from '../option-parsers.js';

interface ReplayFlags {
  db?: string;
  engine?: string;
  set?: string[];
  config?: string;
  until?: string;
  json?: boolean;
  speed?: number;
  quiet?: boolean;
  verbose?: boolean;
  inspect?: boolean;
  port?: number;
}

/**
 * `obra replay <runId>`: drives the run's statecharts again from its journal (no agent, no checks, simulated
 * time) and checks every transition against the record. Exit 0: it matches; 1: it diverges (the first
 * difference is printed); 2: bad input.
 */
export function register(program: Command): void {
  program
    .command('replay')
    .description('replay a saved run through the same statecharts and verify every state and decision matches')
    .argument('<runId>', 'the run to replay (see `obra runs`)')
    .option('--until <iteration.state>', 'stop at the first step entering this state (e.g. 3.scoring, task.awaitingHuman) and print the snapshot', parseUntil)
    .option('--speed <factor>', 'replay in real time divided by factor (1 = as it happened, 10 = ten times faster), printing each step', positiveNumberOption('--speed', '1 = real time'))
    .option('--json', 'print the verdict (and the --until snapshot) as JSON on stdout')
    .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
    .option('--config <file>', 'YAML config file (for store.dir)')
    .option('--quiet', 'print nothing but errors (the exit code says it all)')
    .option('--verbose', 'print every replayed step')
    .option('--inspect', 'feed the run to the Stately inspector instead (with --speed to watch it)')
    .option('--port <n>', 'the inspector port for --inspect (default 8080; 0 picks a free one)', parsePort)
    .option('--engine <name>', 'local (a store folder; default) or restate (the journal Restate keeps)', engineOption)
    .option('--set <key=value>', 'override any config key (repeatable), e.g. --set restate.ingress_url=http://127.0.0.1:8080', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .action(async (runId: string, flags: ReplayFlags) => {
      const [{ loadConfig }, { flagLayer }] = await Promise.all([import('../../config/load.js'), import('../../config/flags.js')]);
      const config = loadConfig({ file: flags.config ?? null, flags: flagLayer(flags) }).config;
      const storeDir = resolve(flags.db ?? config.store.dir);
      if (flags.inspect) {
        // Issue 6: the inspector replays the journal's frames itself (src/inspector/journal-frames.ts).
        const { replayIntoInspector } = await import('../../inspector/journal-frames.js');
        await replayIntoInspector({ runId, storeDir, port: flags.port, speed: flags.speed });
        return;
      }
      const { replayRun } = await import('../../replay/replay.js');
      const out = process.stderr;
      const started = Date.now();
      const printSteps = !flags.quiet && !flags.json && (flags.verbose || flags.speed !== undefined);
      const options = { until: flags.until, speed: flags.speed, onStep: printSteps ? (step: ReplayStep) => void out.write(`${stepLine(step, started)}\n`) : undefined };
      const result =
        config.engine === 'restate'
          ? await (await import('../../hosts/restate/stored-run.js')).replayRemoteRun(runId, { ingressUrl: config.restate.ingress_url, adminUrl: config.restate.admin_url }, options)
          : await replayRun(runId, { storeDir, ...options });
      if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else if (!flags.quiet) report(result, out);
      if (result.stoppedAt && !flags.json) process.stdout.write(`${JSON.stringify(result.stoppedAt.snapshot, null, 2)}\n`);
      process.exitCode = result.verified ? 0 : 1;
    });
}

function report(result: ReplayResult, out: NodeJS.WritableStream): void {
  const resumes = result.segments > 1 ? `, resumed ${result.segments - 1} time${result.segments === 2 ? '' : 's'}` : '';
  const timing = `in ${(result.durationMs / 1000).toFixed(2)} s (the run took ${(result.recordedMs / 1000).toFixed(1)} s${resumes})`;
  if (result.divergence?.sides) {
    const d = result.divergence;
    out.write(`Replay of run ${result.runId}: ${result.steps} steps match, but ${d.what} does not match the journal\n  ${d.sides!.expected}: ${d.expected}\n  ${d.sides!.actual}: ${d.actual}\n`);
    return;
  }
  if (result.divergence) {
    const d = result.divergence;
    out.write(
      `Replay of run ${result.runId} diverges after ${result.steps} matching steps, at ${d.seq === null ? 'the end of the record' : `journal line seq ${d.seq}`}: ${d.what} differs\n` +
        `  recorded: ${d.expected}\n  replayed: ${d.actual}\n`,
    );
    return;
  }
  if (result.stoppedAt) {
    out.write(`Replayed run ${result.runId} up to ${result.stoppedAt.iteration === null ? '' : `iteration ${result.stoppedAt.iteration} `}${result.stoppedAt.state} (journal line seq ${result.stoppedAt.seq}): ${result.steps} steps match the record. Its snapshot:\n`);
    return;
  }
  out.write(`Replayed run ${result.runId}: ${result.steps} steps of ${result.iterations} iteration${result.iterations === 1 ? '' : 's'} ${timing} — every state and decision matches the record.\n`);
}

function stepLine(step: ReplayStep, started: number): string {
  const elapsed = `+${((Date.now() - started) / 1000).toFixed(1)}s`.padStart(7);
  const where = step.actor === 'iteration' && step.iteration ? `[iteration ${step.iteration.index}] ${String(step.iteration.state)}` : `task → ${JSON.stringify(step.task)}`;
  return `${elapsed} ${where}  (${step.event.type})`;
}
