#!/usr/bin/env node
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { ClaudeCodeAgent } from '../agents/claude-code-agent.js';
import { flagLayer } from '../config/flags.js';
import { loadConfig } from '../config/load.js';
import type { ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import type { RunStatus } from '../core/types.js';
import { answerRun, claudeOptionsFromConfig, resumeRun, runTask, type EngineOptions } from '../engine/runner.js';
import type { RunResult } from '../engine/run-result.js';
import { DEMO_SCENARIOS } from './demo.js';
import { fakeClaudePath } from './paths.js';
import { ProgressReporter, type Verbosity } from './progress.js';
import { listRuns, printRunTable, printRunDetails } from './history.js';
import { isInteractive, startCliInspection, withInspectOptions, type InspectFlags } from '../inspect/cli.js';
import { register as registerMachines } from './commands/machines.js';
import { register as registerView } from './commands/view.js';
import { register as registerReplay } from './commands/replay.js';
import { register as registerConfig } from './commands/config.js';
import { register as registerControl } from './commands/control.js';
import { fanOut, RunLog } from '../logging/run-log.js';

/** Exit codes, documented in the README. */
export const EXIT_CODES: Record<RunStatus | 'usage', number> = {
  done: 0,
  failed: 1,
  usage: 2,
  escalated: 3,
  awaiting_human: 3,
  max_iterations: 4,
  budget_exceeded: 5,
  cancelled: 6,
  paused: 7,
  running: 8,
  interrupted: 130,
};

interface CommonFlags {
  config?: string;
  db?: string;
  agentBin?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  set?: string[];
}

const program = new Command('obra')
  .description('Supervise a coding agent (Claude Code, headless) through explicit, durable statecharts.')
  .version('0.1.0')
  .showSuggestionAfterError(true)
  .exitOverride()
  // Commander's usage errors become one line: the problem, then where to look for the fix.
  .configureOutput({
    writeErr: (text) => process.stderr.write(text.startsWith('error:') ? `obra: ${text.slice(7).trim().replace(/\n+/g, ' ')} — see \`obra --help\`\n` : text),
  });

const common = (command: Command) =>
  command
    .option('--config <file>', 'YAML config file (default: ./obra.yaml when present)')
    .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
    .option('--json', 'print the result as one JSON object on stdout')
    .addOption(new Option('--quiet', 'print nothing but errors (and --json output)').conflicts('verbose'))
    .option('--verbose', "also print the agent's tool calls and text as they stream")
    .option('--set <key=value>', 'override any config key (repeatable), e.g. --set budget.max_cost_usd=2', collect, [] as string[]);

common(
  program
    .command('run')
    .description('start a task and drive it until it is done, needs a human, or stops')
    .option('--task <text>', 'what the agent should do (required)')
    .option('--workdir <dir>', 'where the agent works (default: the current directory)')
    .option('--max-iterations <n>', 'stop after this many iterations', parsePositiveInt)
    .option('--agent-bin <path>', 'the claude binary (else $OBRA_CLAUDE_BIN, config agent.local.command, `claude` on PATH)')
    .option('--check <command>', 'a shell command that must pass for the task to be done (repeatable)', collect, [] as string[]),
).action(async (flags: CommonFlags & { task?: string; workdir?: string; maxIterations?: number; check: string[] }) => {
  // Checked here rather than as a required option, so that a mistyped flag is reported as such first.
  if (!flags.task?.trim()) throw new UserError('missing --task: say what the agent should do, e.g. obra run --task "Add a README"');
  const task = flags.task;
  const config = configFrom(flags, { 'task.max_iterations': flags.maxIterations });
  await finishWith(flags, (engine) => runTask({ ...engine, task, workdir: flags.workdir, checks: flags.check }), config);
});

common(
  program
    .command('resume')
    .description('continue a run from its last saved state (after a crash, Ctrl-C or a pause)')
    .argument('<runId>', 'the run to continue (see `obra runs`)')
    .option('--agent-bin <path>', 'use another claude binary than the run started with'),
).action(async (runId: string, flags: CommonFlags) => {
  const config = configFrom(flags);
  await finishWith(flags, (engine) => resumeRun(runId, engine), config);
});

common(
  program
    .command('answer')
    .description('answer a run that waits for a human, and drive it on')
    .argument('<runId>', 'the run waiting in awaitingHuman')
    .argument('[text]', 'your answer; it goes into the next prompt (optional with --allow)')
    .option(
      '--allow <rule>',
      'grant the agent a Claude Code permission rule for the rest of the run, e.g. Write or "Bash(npm run lint:*)" (repeatable)',
      collect,
      [] as string[],
    ),
).action(async (runId: string, text: string | undefined, flags: CommonFlags & { allow: string[] }) => {
  const config = configFrom(flags);
  await finishWith(flags, (engine) => answerRun(runId, text ?? '', { ...engine, allow: flags.allow }), config);
});

common(program.command('runs').description('list the runs in the store')).action((flags: CommonFlags) => {
  const config = configFrom(flags);
  const runs = listRuns(flags.db ?? config.store.dir);
  if (flags.json) process.stdout.write(`${JSON.stringify(runs, null, 2)}\n`);
  else printRunTable(runs);
});

common(program.command('show').description('show one run: its iterations, states, decisions and scores').argument('<runId>')).action(
  (runId: string, flags: CommonFlags) => {
    const config = configFrom(flags);
    const result = printRunDetails(flags.db ?? config.store.dir, runId, Boolean(flags.json));
    if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  },
);

registerConfig(program);
registerControl(program);

common(
  program
    .command('demo')
    .description('run a whole task with the bundled fake Claude CLI (no network, no API key)')
    .addOption(new Option('--scenario <name>', 'which demo to run').choices(Object.keys(DEMO_SCENARIOS)).default('basic'))
    .option('--latency <ms>', 'how long each fake agent call takes', parsePositiveInt, 300),
).action(async (flags: CommonFlags & { scenario: string; latency: number }) => {
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
});

for (const name of ['run', 'resume', 'answer', 'demo']) withInspectOptions(program.commands.find((c) => c.name() === name)!);
registerMachines(program);
registerView(program);
registerReplay(program);

/** Config from the file, env and the flags that map onto config keys. */
function configFrom(flags: CommonFlags, extra: Record<string, unknown> = {}): ObraConfig {
  const named = Object.fromEntries(Object.entries(extra).map(([path, value]) => [path, { value, flag: path }]));
  return loadConfig({ file: flags.config ?? null, flags: flagLayer(flags, named) }).config;
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
      agentCommand: flags.agentBin ?? process.env.OBRA_CLAUDE_BIN,
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

function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`expected a whole number of at least 1, got "${value}"`);
  return n;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export async function main(argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.exitCode === 0) return 0;
      return EXIT_CODES.usage;
    }
    if (error instanceof UserError) {
      process.stderr.write(`obra: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`obra: internal error: ${(error as Error)?.message ?? String(error)}\n`);
    if (process.env.OBRA_DEBUG) process.stderr.write(`${(error as Error)?.stack}\n`);
    else process.stderr.write('  (set OBRA_DEBUG=1 for the stack trace, and please report it)\n');
    return 70;
  }
}

process.exitCode = await main(process.argv);
