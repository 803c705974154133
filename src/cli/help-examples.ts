import type { Command } from 'commander';

/**
 * What `obra <command> --help` shows after the options: examples to copy, and the environment variables the
 * command reads. Kept apart from the command declarations so main.ts stays a list of commands and flags.
 */

type Example = [what: string, commandLine: string];

const ENV = {
  config: ['OBRA_<KEY>', 'any config key, e.g. OBRA_AGENT__LOCAL__TIMEOUT=15m (every key: docs/config-reference.md)'],
  db: ['OBRA_DB', 'the store folder (store.dir; default .obra in the current directory)'],
  agentBins: ['OBRA_CLAUDE_BIN', "the Claude Code binary; OBRA_CODEX_BIN, OBRA_GEMINI_BIN, OBRA_QWEN_BIN and OBRA_OPENCODE_BIN the other agents'"],
  maxIterations: ['OBRA_MAX_ITERATIONS', 'the iteration budget (task.max_iterations)'],
  engine: ['OBRA_ENGINE=restate', 'work against Restate (its address: OBRA_RESTATE__INGRESS_URL)'],
  plain: ['NO_COLOR, CI', 'plain lines on stderr: no colours, no countdown (CI also stops the inspector waiting for Ctrl-C)'],
  sessionLocks: ['OBRA_SESSION_LOCK_DIR', "where the agent sessions' lock files are kept (default <tmp>/obra-session-locks-<uid>)"],
  sandbox: ['IS_SANDBOX=1', 'lets Claude Code skip permissions as root (agent.local.dangerously_skip_permissions)'],
  restateServer: ['OBRA_RESTATE_SERVER', 'the restate-server binary to run (else node_modules, .cache/restate-server/, PATH)'],
  restateLogging: ['RESTATE_LOGGING=INFO', "the Restate SDK's own log lines (default WARN)"],
  debug: ['OBRA_DEBUG=1', 'print the stack trace of an internal error'],
} as const;

type EnvName = keyof typeof ENV;

const HELP: Record<string, { examples: Example[]; env: EnvName[] }> = {
  // `obra --help` itself.
  '': {
    examples: [
      ['Try it with the bundled fake Claude CLI', 'obra demo'],
      ['Drive one task with the real Claude Code', 'obra run --task "Add input validation to src/api.ts" --check "npm test"'],
      ['Queue tasks and drive them side by side', 'obra submit --task "Document the API" --repo ~/src/app && obra work'],
      ['The options, examples and environment of one command', 'obra run --help'],
    ],
    env: ['agentBins', 'db', 'config', 'debug'],
  },
  run: {
    examples: [
      ['Drive a task until its checks pass', 'obra run --task "Add input validation to src/api.ts" --check "npm test" --check "npx tsc --noEmit"'],
      ['Another agent, a budget, the result as JSON', 'obra run --task "Fix the flaky login test" --agent codex --max-iterations 5 --set budget.max_cost_usd=2 --json'],
      ['Follow it live in the Stately inspector', 'obra run --task "Document the API" --inspect'],
    ],
    env: ['agentBins', 'db', 'maxIterations', 'config', 'plain', 'sessionLocks', 'sandbox', 'debug'],
  },
  resume: {
    examples: [
      ['Continue a run after a crash, Ctrl-C or a pause', 'obra resume 20261125-133427-013e7f'],
      ['On Restate: queue a paused task again', 'obra resume 20261125-133427-013e7f --engine restate'],
    ],
    env: ['agentBins', 'db', 'engine', 'config', 'plain', 'sessionLocks', 'debug'],
  },
  answer: {
    examples: [
      ['Answer the question a run waits on', 'obra answer 20261125-133427-013e7f "Use the users table"'],
      ['Grant what the agent was refused, for the rest of the run', 'obra answer 20261125-133427-013e7f --allow "Bash(npm run lint:*)"'],
    ],
    env: ['agentBins', 'db', 'engine', 'config', 'plain', 'sessionLocks', 'debug'],
  },
  runs: {
    examples: [
      ['The runs of the store, newest first', 'obra runs'],
      ['As JSON, for a script', 'obra runs --json --db ~/src/app/.obra'],
    ],
    env: ['db', 'config', 'debug'],
  },
  show: {
    examples: [
      ['One run: iterations, states, decisions, scores, checks', 'obra show 20261125-133427-013e7f'],
      ['The same object `obra run --json` prints', 'obra show 20261125-133427-013e7f --json'],
    ],
    env: ['db', 'engine', 'config', 'debug'],
  },
  config: {
    examples: [
      ['Every option, its value and where it came from', 'obra config'],
      ['With an override, as JSON', 'obra config --set decision.stuck_after=4 --json'],
    ],
    env: ['config', 'db', 'agentBins', 'maxIterations', 'debug'],
  },
  pause: {
    examples: [['Pause a run after its current iteration, and wait until it is paused', 'obra pause 20261125-133427-013e7f --wait']],
    env: ['db', 'engine', 'config', 'debug'],
  },
  cancel: {
    examples: [['Stop a run now (its agent is killed)', 'obra cancel 20261125-133427-013e7f --reason "wrong repository"']],
    env: ['db', 'engine', 'config', 'debug'],
  },
  submit: {
    examples: [
      ['Queue a task on a repository (a worktree and a branch of its own)', 'obra submit --task "Add input validation" --check "npm test" --repo ~/src/app'],
      ['Higher priority, after another run, with another agent', 'obra submit --task "Document the API" --repo ~/src/app --priority 2 --after 20261128-150252-f79958 --agent gemini'],
      ['A YAML list of tasks, all queued or none', 'obra submit --file tasks.yaml'],
      ['Race three agents on one task; the evidence picks the winner (obra merge <raceId> lands it)', 'obra submit --task "Fix the flaky test" --check "npm test" --repo ~/src/app --agents claude,codex,gemini'],
    ],
    env: ['db', 'engine', 'agentBins', 'maxIterations', 'config', 'debug'],
  },
  work: {
    examples: [
      ['Drive the queue, 4 at a time, until Ctrl-C', 'obra work'],
      ['Drive what can start, then exit with the worst status', 'obra work --concurrency 8 --until-idle'],
    ],
    env: ['agentBins', 'db', 'config', 'plain', 'sessionLocks', 'debug'],
  },
  status: {
    examples: [
      ['One line per task', 'obra status'],
      ['Redrawn every second, until Ctrl-C', 'obra status --watch'],
      ["Restate's tasks, as JSON", 'obra status --engine restate --json'],
    ],
    env: ['db', 'engine', 'config', 'plain', 'debug'],
  },
  worker: {
    examples: [
      ['Serve Obra to a local Restate (`obra restate up`) and drive its tasks', 'obra worker'],
      [
        'For a Restate on another machine, accepting only calls signed with the key `obra restate up` printed there',
        "obra worker --bind 0.0.0.0 --advertise http://10.0.0.5:9080 --port 9080 --set 'restate.identity_keys=[publickeyv1_2G8dCQhArfvGpzPw5Vx2ALciR4xCLHfS5YaT93XjNxX9]'",
      ],
    ],
    env: ['agentBins', 'config', 'sessionLocks', 'restateLogging', 'debug'],
  },
  restate: {
    examples: [['Start a single-node Restate server, installing it if missing', 'obra restate up --install']],
    env: ['restateServer', 'db', 'config', 'debug'],
  },
  'restate up': {
    examples: [
      ['A server on 127.0.0.1:8080 (ingress) and :9070 (admin), data in .obra/restate', 'obra restate up --install'],
      ['On free ports (printed)', 'obra restate up --port 0 --admin-port 0'],
    ],
    env: ['restateServer', 'db', 'config', 'debug'],
  },
  diff: {
    examples: [["A finished task's changes against the commit it started from", 'obra diff 20261128-150252-f79958']],
    env: ['db', 'config', 'debug'],
  },
  merge: {
    examples: [
      ["Merge a task's branch into its base branch (exit 11 on a conflict, undone)", 'obra merge 20261128-150252-f79958'],
      ['Hand a conflict to an agent: a resolution task is queued (exit 12); merge again once it is done', 'obra merge --resolve 20261128-150252-f79958'],
      ['Land every done task through the merge queue, checks before the base moves (exit 13 when a landing is red)', 'obra merge --all --strategy squash'],
    ],
    env: ['db', 'config', 'debug'],
  },
  discard: {
    examples: [["Remove a task's worktree and branch", 'obra discard 20261128-150252-f79958']],
    env: ['db', 'config', 'debug'],
  },
  retry: {
    examples: [['Queue a failed task again, as a new run', 'obra retry 20261128-150252-f79958 --json']],
    env: ['db', 'config', 'debug'],
  },
  demo: {
    examples: [
      ['A whole task with the bundled fake Claude CLI', 'obra demo'],
      ['A check that fails first, its output fed back, then passes', 'obra demo --scenario checks'],
      ['A run that gets stuck and waits for a human (then: obra answer <runId> "…")', 'obra demo --scenario escalate'],
    ],
    env: ['db', 'config', 'plain', 'debug'],
  },
  machines: {
    examples: [
      ['Both statecharts as createMachine configs for Stately Studio', 'obra machines --json'],
      ['The task machine as a mermaid chart', 'obra machines task --mermaid'],
    ],
    env: ['debug'],
  },
  view: {
    examples: [
      ['The board of the store\'s tasks, on http://127.0.0.1:7070/', 'obra view'],
      ['Step through one run on its statecharts, on another port', 'obra view 20261125-133427-013e7f --port 8090'],
    ],
    env: ['db', 'agentBins', 'config', 'debug'],
  },
  mcp: {
    examples: [
      ["Let your Claude Code hand tasks to Obra", 'claude mcp add obra -- obra mcp'],
      ['Serve another store', 'obra mcp --db ~/src/app/.obra'],
    ],
    env: ['db', 'agentBins', 'config', 'debug'],
  },
  replay: {
    examples: [
      ['Check a run against its statecharts (exit 0: every step matches)', 'obra replay 20261125-133427-013e7f'],
      ["The snapshot on entering iteration 3's scoring", 'obra replay 20261125-133427-013e7f --until 3.scoring'],
      ['Watch it at ten times the speed', 'obra replay 20261125-133427-013e7f --speed 10'],
    ],
    env: ['db', 'engine', 'config', 'debug'],
  },
};

/** The help text of one command (`restate up` for a subcommand), or null for a command without examples. */
export function helpAfterOptions(name: string): string | null {
  const help = HELP[name];
  if (!help) return null;
  const examples = help.examples.map(([what, line]) => `  ${what}:\n    $ ${line}`).join('\n');
  const rows = help.env.map((key) => ENV[key]);
  const width = Math.max(...rows.map(([variable]) => variable.length));
  const env = rows.map(([variable, meaning]) => `  ${variable.padEnd(width)}  ${meaning}`).join('\n');
  return `\nExamples:\n${examples}\n\nEnvironment:\n${env}\n`;
}

/** Adds the examples and the environment to the help of `obra` and of every command, subcommands included. */
export function withHelpExamples(program: Command, prefix = ''): void {
  if (prefix === '') program.addHelpText('after', helpAfterOptions('')!);
  for (const command of program.commands) {
    const name = `${prefix}${command.name()}`;
    const text = helpAfterOptions(name);
    if (text) command.addHelpText('after', text);
    withHelpExamples(command, `${name} `);
  }
}
