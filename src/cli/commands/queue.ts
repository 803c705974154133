import type { Command } from 'commander';
import type { AgentKind } from '../../config/schema.js';
import { UserError } from '../../core/errors.js';
import type { CommonFlags } from '../config-from.js';
import { MERGE_STRATEGIES } from '../../workspace/conflict.js';
import type { MergeFlags } from '../worktree.js';
import { agentOption, agentsOption, choiceOption, durationOption, engineOption, portOption, wholeNumberOption } from '../option-parsers.js';
import type { RestateUpFlags } from '../restate.js';

/**
 * The queue's commands: `obra submit` (one task, or a file of them), `obra work` (drive the queue), `obra status`
 * (one line per task, or live), and a task's worktree: `obra diff`, `obra merge`, `obra discard`, `obra retry`. Each loads what
 * it uses when it runs.
 */
export function register(program: Command, common: (command: Command) => Command): void {
  common(
    program
      .command('submit')
      .description('queue a task (or a file of tasks) for `obra work`; prints its run id')
      .option('--task <text>', 'what the agent should do')
      .option('--file <tasks.yaml>', 'queue every task of a YAML list (all or none)')
      .option('--check <command>', 'a shell command that must pass for the task to be done (repeatable)', collect, [] as string[])
      .option('--repo <dir>', 'the folder the task works on (default: the current one); in a git repository it gets a worktree of its own')
      .option('--repo-url <url>', 'engine restate: a git repository the workers clone; the task moves between them with its branch obra/<runId>')
      .option('--base <ref>', "what the task's branch starts from (default: the repository's HEAD)")
      .option('--priority <n>', 'higher goes first (default 0)', wholeNumberOption('--priority'))
      .option('--agent <kind>', 'the agent CLI: claude (default), codex, gemini, qwen or opencode (config agent.kind; `agent:` per task in a file)', agentOption)
      .option('--agent-bin <path>', "the binary of the task's agent kind (--agent, else agent.kind), kept with the task; a worker's own binary of that kind wins where it has one")
      .option('--agents <kinds>', 'a race: the task once per agent, e.g. claude,codex,gemini; the evidence picks the winner (docs/race.md)', agentsOption)
      .option('--attempts <n>', 'a race: this many attempts (per agent with --agents); the evidence picks the winner', wholeNumberOption('--attempts', 1))
      .option('--after <runId>', 'start only once that run is done (blocked if it ends otherwise)')
      .option('--run-id <id>', 'the run id to use (default: a new one)')
      .option('--engine <name>', 'local (a store folder; default) or restate (config engine)', engineOption),
  ).action(async (flags: CommonFlags & { task?: string; file?: string; check: string[]; repo?: string; repoUrl?: string; base?: string; priority?: number; after?: string; runId?: string; agent?: AgentKind; agentBin?: string; agents?: AgentKind[]; attempts?: number }) => {
    const [{ configFrom }, { submitBatch }, { readTasksFile }] = await Promise.all([import('../config-from.js'), import('../../queue/submit.js'), import('../../queue/tasks-file.js')]);
    if (flags.file && (flags.agents || flags.attempts)) throw new UserError('--agents and --attempts are for --task; in a tasks file write agents: [...] or attempts: N on the task');
    if (flags.agent && flags.agents) throw new UserError('give either --agent or --agents, not both');
    if (flags.file && flags.task) throw new UserError('give either --task or --file, not both');
    if (!flags.file && !flags.task?.trim()) throw new UserError('missing --task (or --file): say what the agent should do, e.g. obra submit --task "Add a README"');
    const config = configFrom(flags);
    const tasks = flags.file
      ? readTasksFile(flags.file)
      : [{ task: flags.task!, checks: flags.check, repo: flags.repo, repoUrl: flags.repoUrl, base: flags.base, priority: flags.priority, after: flags.after, runId: flags.runId, ...(flags.agents ? { agents: flags.agents } : {}), ...(flags.attempts !== undefined ? { attempts: flags.attempts } : {}) }];
    if (config.engine !== 'restate' && flags.repoUrl) throw new UserError('--repo-url is for tasks that move between Restate workers: add --engine restate (or use --repo with a local repository)');
    const { runIds, races } = config.engine === 'restate' ? await (await import('../restate.js')).submitRemote(tasks, config) : await submitBatch(tasks, { config, storeDir: flags.db ?? config.store.dir });
    const single = !flags.file && races.length === 1 ? races[0]! : null;
    if (flags.json) process.stdout.write(`${JSON.stringify(flags.file ? { runIds, ...(races.length ? { races } : {}) } : single ? { raceId: single.raceId, runIds } : { runId: runIds[0] })}\n`);
    else process.stdout.write(`${single ? single.raceId : runIds.join('\n')}\n`);
    // On Restate the winner is a branch in the --repo-url repository (`obra diff` and `obra merge` are the local engine's).
    const takeWinner = (raceId: string) => (config.engine === 'restate' ? '`obra status --engine restate` names the winner and its branch' : `\`obra diff ${raceId}\` and \`obra merge ${raceId}\` take the winner`);
    if (!flags.quiet && !flags.json) for (const race of races) process.stderr.write(`Race ${race.raceId}: ${race.runIds.length} attempts (${race.runIds.join(', ')}); once the last ends, ${takeWinner(race.raceId)}.\n`);
    const [driver, status] = config.engine === 'restate' ? ['`obra worker`', '`obra status --engine restate`'] : ['`obra work`', '`obra status`'];
    if (!flags.quiet && !flags.json) process.stderr.write(`Queued ${runIds.length} task${runIds.length === 1 ? '' : 's'}; ${driver} drives them, ${status} shows them.\n`);
  });

  common(
    program
      .command('work')
      .description('drive the queued (and interrupted) tasks, N at a time; waits for new ones until Ctrl-C')
      .option('--concurrency <n>', 'tasks driven at once (default: config queue.concurrency, 4)', wholeNumberOption('--concurrency', 1))
      .option('--until-idle', 'exit once nothing is left that could start (0 when every task ended done)')
      .option('--agent-bin <path>', "this machine's binary of the configured agent kind (agent.kind, default claude): it wins over the one a task was submitted with, which is used only when it exists here"),
  ).action(async (flags: CommonFlags & { concurrency?: number; untilIdle?: boolean; agentBin?: string }) => (await import('../work.js')).runWorker(flags));

  program
    .command('status')
    .description('one line per task: status, state, iteration, last decision, cost, what it waits for, age')
    .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
    .option('--config <file>', 'YAML config file (for store.dir)')
    .option('--json', 'print the lines as JSON')
    .option('--watch', 'keep showing it, redrawn in a terminal (plain lines when not a terminal), until Ctrl-C')
    .option('--by-agent', 'only the sums per agent kind: tasks, calls, cost and tokens (with --json: an array)')
    .option('--engine <name>', 'local (a store folder; default) or restate (config engine)', engineOption)
    .option('--set <key=value>', 'override any config key (repeatable), e.g. --set restate.ingress_url=http://127.0.0.1:8080', collect, [] as string[])
    .action(async (flags: { db?: string; config?: string; json?: boolean; watch?: boolean; engine?: string; set?: string[]; byAgent?: boolean }) => {
      const { configFrom } = await import('../config-from.js');
      if (configFrom(flags).engine === 'restate') {
        if (flags.byAgent) throw new UserError('--by-agent needs the local engine: Restate\'s queue keeps no token sums (n/a)');
        return (await import('../restate.js')).statusRemote(flags);
      }
      return (await import('../status.js')).showStatus(flags);
    });

  common(
    program
      .command('worker')
      .description('drive tasks queued in Restate (engine restate): serves Obra\'s services to Restate, N tasks at a time, until Ctrl-C')
      .option('--concurrency <n>', 'tasks driven at once (default: config queue.concurrency, 4)', wholeNumberOption('--concurrency', 1))
      .option('--name <name>', "this worker's name in the runs' records (default: host:pid)")
      .option('--port <n>', 'the port the services listen on for Restate (default: a free one)', portOption('--port'))
      .option('--bind <ip>', 'the address they listen on (default 127.0.0.1; 0.0.0.0 when Restate runs on another machine: needs restate.identity_keys)')
      .option('--insecure', 'with --bind beyond loopback and no restate.identity_keys: accept calls that are not signed by the server')
      .option('--advertise <url>', 'the URL Restate reaches them at (default http://127.0.0.1:<port>)')
      .option('--work-dir <dir>', 'where checkouts of --repo-url tasks are kept (default: config restate.work_dir, ~/.obra/work)')
      .option('--agent-bin <path>', "this machine's binary of the configured agent kind (agent.kind, default claude): it wins over the one a task was submitted with, which is used only when it exists here")
      .option('--park-after <duration>', 'a task that must wait longer than this for a usage limit is let go until the reset (default 60 seconds; 90s, 15m, 8h, 2d)', durationOption('--park-after')),
  ).action(async (flags: CommonFlags & { concurrency?: number; name?: string; port?: number; bind?: string; advertise?: string; workDir?: string; parkAfter?: number; insecure?: boolean }) => (await import('../restate.js')).restateWorker(flags));

  const restate = program.command('restate').description('a local Restate server, to try the distributed engine on one machine');
  common(
    restate
      .command('up')
      .description('start a single-node Restate server on 127.0.0.1 (its data under the store), until Ctrl-C')
      .option('--data <dir>', 'where the server keeps its data (default: <store>/restate)')
      .option('--port <n>', "the ingress's port (default: restate.ingress_url's, 8080; 0: a free one, printed)", portOption('--port'))
      .option('--admin-port <n>', "the admin API's port (default: restate.admin_url's, 9070; 0: a free one, printed)", portOption('--admin-port'))
      .option('--node-port <n>', 'the port of the node-to-node fabric (default: a free one)', portOption('--node-port'))
      .option('--install', "install the server when it is missing (npm, into Obra's .cache/restate-server/)"),
  ).action(async (flags: RestateUpFlags) => (await import('../restate.js')).restateUp(flags));

  const worktreeCommand = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .argument('<runId>', 'the task (see `obra status`)')
      .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
      .option('--config <file>', 'YAML config file (for store.dir)');
  worktreeCommand('diff', "print the task's changes against the commit it started from (a race's id: its winner's)").action(async (runId: string, flags: { db?: string; config?: string }) =>
    (await import('../worktree.js')).diff(runId, flags),
  );
  program
    .command('merge')
    .description("land done tasks on their base branch: one task merges in your checkout (a race's id: its winner); several (or --all, or --strategy) go through the merge queue, checks before the base moves (docs/landing.md)")
    .argument('[runIds...]', 'the tasks (see `obra status`)')
    .option('--all', 'every done task whose branch is neither merged nor discarded; takes up a queue that was cut short')
    .option('--strategy <how>', 'merge (a merge commit each), rebase or squash (default: config merge.strategy, merge)', choiceOption('--strategy', MERGE_STRATEGIES))
    .option('--resolve', 'one task: on a conflict, queue a task that has an agent resolve it (exit 12); `obra merge <runId>` lands it once done (default: merge.resolve)')
    .option('--no-resolve', 'one task: on a conflict, change nothing and exit 11 (you resolve it), whatever merge.resolve says')
    .option('--db <dir>', 'where runs are stored (default: .obra in the current directory)')
    .option('--config <file>', 'YAML config file (for store.dir, merge.strategy and merge.resolve)')
    .option('--json', 'print the landings as JSON')
    .option('--set <key=value>', 'override any config key (repeatable), e.g. --set merge.strategy=squash', collect, [] as string[])
    .action(async (runIds: string[], flags: MergeFlags) => (await import('../worktree.js')).merge(runIds, flags));
  worktreeCommand('discard', "remove the task's worktree and branch (refused while it runs)").action(async (runId: string, flags: { db?: string; config?: string }) =>
    (await import('../worktree.js')).discard(runId, flags),
  );
  worktreeCommand('retry', 'queue a task that failed (or waits for a human) again, as a new run; prints its run id')
    .option('--json', 'print { runId, retried } as JSON')
    .action(async (runId: string, flags: { db?: string; config?: string; json?: boolean }) => (await import('../worktree.js')).retry(runId, flags));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

