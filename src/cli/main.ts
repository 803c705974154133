#!/usr/bin/env node
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { UserError } from '../core/errors.js';
import { USAGE_EXIT_CODE } from '../core/statuses.js';
import { withInspectOptions } from '../inspector/cli.js';
import { register as registerConfig } from './commands/config.js';
import { register as registerControl } from './commands/control.js';
import { register as registerMachines } from './commands/machines.js';
import { register as registerMcp } from './commands/mcp.js';
import { register as registerQueue } from './commands/queue.js';
import { register as registerReplay } from './commands/replay.js';
import { register as registerView } from './commands/view.js';
import { DEMO_SCENARIOS } from './demo.js';
import { withHelpExamples } from './help-examples.js';
import type { CommonFlags } from './config-from.js';
import { agentOption, choiceOption, durationOption, engineOption, wholeNumberOption } from './option-parsers.js';

/**
 * The `obra` command line. This module only declares the commands and their flags; each command loads what
 * it uses when it runs (`await import`), so `obra --help` or `obra runs` start in a fraction of the time the
 * engine, the inspector and the agent would take to load.
 */

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

const drive = () => import('./drive.js');

const run = common(
  program
    .command('run')
    .description('start a task and drive it until it is done, needs a human, or stops')
    .option('--task <text>', 'what the agent should do (required)')
    .option('--workdir <dir>', 'where the agent works (default: the current directory)')
    .option('--max-iterations <n>', 'stop after this many iterations', wholeNumberOption('--max-iterations', 1))
    .option('--agent <kind>', 'the agent CLI: claude (default), codex, gemini, qwen or opencode (config agent.kind)', agentOption)
    .option('--agent-bin <path>', "the agent's binary (else $OBRA_CLAUDE_BIN / $OBRA_CODEX_BIN, config agent.<kind>.command, the CLI on PATH)")
    .option('--check <command>', 'a shell command that must pass for the task to be done (repeatable)', collect, [] as string[]),
).action(async (flags: CommonFlags & { task?: string; workdir?: string; maxIterations?: number; check: string[] }) => {
  // Checked here rather than as a required option, so that a mistyped flag is reported as such first.
  if (!flags.task?.trim()) throw new UserError('missing --task: say what the agent should do, e.g. obra run --task "Add a README"');
  await (await drive()).run({ ...flags, task: flags.task });
});

const resume = common(
  program
    .command('resume')
    .description('continue a run from its last saved state (after a crash, Ctrl-C or a pause)')
    .argument('<runId>', 'the run to continue (see `obra runs`)')
    .option('--agent-bin <path>', "use another binary for the run's agent than the one it started with")
    .option('--engine <name>', 'local (a store folder; default) or restate (queued again for the workers)', engineOption),
).action(async (runId: string, flags: CommonFlags) => {
  const config = (await import('./config-from.js')).configFrom(flags);
  if (config.engine === 'restate') return (await import('./restate.js')).sendRemote(runId, { type: 'RESUMED' }, config, flags);
  return (await drive()).resume(runId, flags);
});

const answer = common(
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
    )
    .option('--engine <name>', 'local (a store folder; default) or restate (config engine)', engineOption),
).action(async (runId: string, text: string | undefined, flags: CommonFlags & { allow: string[] }) => {
  const config = (await import('./config-from.js')).configFrom(flags);
  if (config.engine !== 'restate') return (await drive()).answer(runId, text ?? '', flags);
  if (!text?.trim() && !flags.allow.length) throw new UserError('the answer is empty — write what the agent should do next, or grant what it was refused with --allow "<rule>"');
  const event = { type: 'HUMAN_ANSWER' as const, answer: text ?? '', ...(flags.allow.length ? { allow: flags.allow } : {}) };
  return (await import('./restate.js')).sendRemote(runId, event, config, flags);
});

common(program.command('runs').description('list the runs in the store')).action(async (flags: CommonFlags) => {
  const [{ listRuns, printRunTable }, storeDir] = await Promise.all([import('./runs.js'), storeDirOf(flags)]);
  const runs = listRuns(storeDir);
  if (flags.json) process.stdout.write(`${JSON.stringify(runs, null, 2)}\n`);
  else printRunTable(runs);
});

common(
  program
    .command('show')
    .description("show one run: its iterations, states, decisions, scores and tokens (a race's id: its attempts and ranking)")
    .argument('<runId>')
    .option('--engine <name>', 'local (a store folder; default) or restate', engineOption),
).action(
  async (runId: string, flags: CommonFlags) => {
    const config = (await import('./config-from.js')).configFrom(flags);
    if (config.engine === 'restate') {
      const [{ remoteResult }, { printResult }] = await Promise.all([import('../hosts/restate/stored-run.js'), import('./show.js')]);
      const result = await remoteResult(runId, { ingressUrl: config.restate.ingress_url, adminUrl: config.restate.admin_url });
      if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else printResult(result);
      return;
    }
    const [{ printRunDetails, printRaceDetails }, storeDir] = await Promise.all([import('./show.js'), storeDirOf(flags)]);
    // A race's id shows the race: its attempts and its ranking (docs/race.md).
    if (printRaceDetails(storeDir, runId, Boolean(flags.json))) return;
    const result = printRunDetails(storeDir, runId, Boolean(flags.json));
    if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  },
);

registerConfig(program);
registerControl(program);
registerQueue(program, common);

const demo = common(
  program
    .command('demo')
    .description('run a whole task with the bundled fake Claude CLI (no network, no API key)')
    .addOption(new Option('--scenario <name>', 'which demo to run').choices(Object.keys(DEMO_SCENARIOS)).argParser(choiceOption('--scenario', Object.keys(DEMO_SCENARIOS))).default('basic'))
    .option('--latency <duration>', 'how long each fake agent call takes (a bare number is milliseconds; 2s, 1m)', durationOption('--latency', 'ms'), 300),
).action(async (flags: CommonFlags & { scenario: string; latency: number }) => (await drive()).demo(flags));

for (const command of [run, resume, answer, demo]) withInspectOptions(command);
registerMachines(program);
registerView(program);
registerMcp(program);
registerReplay(program);
withHelpExamples(program);

/** The store folder: --db, else the config's store.dir (the config module loads only when --db is not given). */
async function storeDirOf(flags: CommonFlags): Promise<string> {
  if (flags.db && !flags.config && !flags.set?.length) return resolve(flags.db);
  return resolve((await import('./config-from.js')).configFrom(flags).store.dir);
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
      return USAGE_EXIT_CODE;
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
