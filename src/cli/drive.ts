import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ClaudeCodeAgent } from '../agents/claude-code-agent.js';
import { configFrom, type CommonFlags } from './config-from.js';
import type { ObraConfig } from '../config/schema.js';
import { binariesFromEnv } from '../core/agent-kinds.js';
import { EXIT_CODES } from '../core/statuses.js';
import type { RunResult } from '../engine/run-result.js';
import { answerRun, claudeOptionsFromConfig, resumeRun, runTask, type EngineOptions } from '../hosts/files/local.js';
import { isInteractive, startCliInspection, type InspectFlags } from '../inspector/cli.js';
import { fanOut, RunLog } from '../logging/run-log.js';
import { DEMO_SCENARIOS } from './demo.js';
import { fakeClaudePath } from './paths.js';
import { ProgressReporter, type Verbosity } from './progress.js';

/**
 * The commands that drive a run in this process — `run`, `resume`, `answer`, `demo` — behind the CLI's flags:
 * the config from its layers, progress on stderr, the run's log file, Ctrl-C, the inspector, the exit code.
 * Loaded only when one of them runs (`obra --help` and `obra runs` never pay for the engine).
 */

export { configFrom, type CommonFlags } from './config-from.js';

export async function run(flags: CommonFlags & InspectFlags & { task: string; workdir?: string; maxIterations?: number; check: string[] }): Promise<void> {
  const config = configFrom(flags, { 'task.max_iterations': flags.maxIterations });
  await finishWith(flags, (engine) => runTask({ ...engine, task: flags.task, workdir: flags.workdir, checks: flags.check }), config);
}

export async function resume(runId: string, flags: CommonFlags & InspectFlags): Promise<void> {
  await finishWith(flags, (engine) => resumeRun(runId, engine), configFrom(flags));
}

export async function answer(runId: string, text: string, flags: CommonFlags & InspectFlags & { allow: string[] }): Promise<void> {
  await finishWith(flags, (engine) => answerRun(runId, text, { ...engine, allow: flags.allow }), configFrom(flags));
}

export async function demo(flags: CommonFlags & InspectFlags & { scenario: string; latency: number }): Promise<void> {
  const scenario = DEMO_SCENARIOS[flags.scenario]!;
  const config = configFrom(flags, { 'agent.local.command': fakeClaudePath(), 'task.checks': scenario.checks });
  const workdir = mkdtempSync(join(tmpdir(), 'obra-demo-'));
  const agent = new ClaudeCodeAgent({
    ...claudeOptionsFromConfig(config),
    env: {
      // The fake keeps its sessions away from the user's real ~/.claude.
      CLAUDE_CONFIG_DIR: join(workdir, '.claude-home'),
      FAKE_CLAUDE_REPLIES: JSON.stringify(scenario.replies),
      FAKE_CLAUDE_LATENCY_MS: String(flags.latency),
    },
  });
  if (!flags.quiet && !flags.json) process.stderr.write(`Demo "${flags.scenario}": ${scenario.description}\nWorking directory: ${workdir}\n\n`);
  await finishWith(flags, (engine) => runTask({ ...engine, agent, task: scenario.task, workdir }), config);
}

async function finishWith(flags: CommonFlags & InspectFlags, start: (engine: EngineOptions) => Promise<RunResult>, config: ObraConfig): Promise<void> {
  const inspection = await startCliInspection(flags);
  let finished = false;
  const verbosity: Verbosity = flags.quiet ? 'quiet' : flags.verbose ? 'verbose' : 'normal';
  const reporter = new ProgressReporter(verbosity);
  // runs/<id>/run.log: structured (pino) lines from the same events the terminal shows.
  const runLog = config.logging.file ? new RunLog({ level: config.logging.level }) : null;
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`\nobra: ${signal} — stopping; the run is saved and \`obra resume\` continues it (press again to quit at once)\n`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await start({
      config,
      storeDir: resolve(flags.db ?? config.store.dir),
      onEvent: fanOut(reporter.handle, runLog?.handle),
      signal: controller.signal,
      agentCommand: flags.agentBin ?? binariesFromEnv(process.env),
      inspect: inspection?.inspect,
    });
    if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (result.status === 'escalated' && !flags.quiet) {
      process.stderr.write(`\nThe run needs a human: ${result.question ?? result.reason}\nAnswer with: obra answer ${result.runId} "<what to do>"\n`);
    }
    process.exitCode = EXIT_CODES[result.status] ?? 1;
    finished = true;
  } finally {
    reporter.dispose();
    runLog?.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await inspection?.finish({ hold: finished && isInteractive() });
  }
}
