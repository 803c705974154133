import { z } from 'zod';
import { AGENT_KINDS, type AgentKind } from '../core/agent-kinds.js';
import { DURATION_FORMS, notADuration, parseDuration } from './duration.js';
import { ENGINES } from './engines.js';

/**
 * Every option Obra reads, with its default. Keys are snake_case like the user's original YAML
 * (`agent.local.max_retries`, ...). Objects are strict: an unknown key is an error with a suggestion, never
 * silently ignored. Messages say what is allowed; the loader adds the key path, the bad value and its source.
 */

const fraction = () =>
  z.number({ error: 'expected a number between 0 and 1' }).min(0, 'must be between 0 and 1 (it is below 0)').max(1, 'must be between 0 and 1 (it is above 1)');
const weight = () => z.number({ error: 'expected a weight: a number of at least 0' }).min(0, 'a weight must be at least 0');
/**
 * A length of time, in seconds: a number of seconds, or a string with a unit (`90s`, `15m`, `8h`, `2d`) — the same
 * forms for every duration key (and every duration flag, see ./duration.ts). The message quotes the bad value.
 */
const duration = () =>
  z
    .union([z.number(), z.string()], { error: `expected a duration: ${DURATION_FORMS}` })
    .transform((value, ctx) => {
      const seconds = parseDuration(value);
      if (seconds === null) {
        ctx.addIssue({ code: 'custom', message: notADuration(value), params: { quotesValue: true } });
        return z.NEVER;
      }
      return seconds;
    });
/** A duration above 0 (a timeout, a delay). */
const seconds = () => duration().pipe(z.number().positive('must be more than 0 seconds'));
/** One URL, a list of them, or several in one string separated by commas: always a list of at least one. */
const urlList = (example: string) =>
  z
    .preprocess(
      (value) => (typeof value === 'string' ? value.split(',').map((url) => url.trim()) : value),
      z.array(z.url({ error: `expected a URL such as ${example}` }), { error: `expected a URL such as ${example}, or a list of them` }).min(1, `give at least one URL, such as ${example}`),
    )
    .default([example]);

const wholeNumber = (min: number) =>
  z.number({ error: 'expected a whole number' }).int('must be a whole number').min(min, `must be at least ${min}`);

export const agentLocalSchema = z.strictObject({
  command: z.string().min(1).default('claude').describe('The Claude Code binary (also --agent-bin, OBRA_CLAUDE_BIN).'),
  extra_args: z.array(z.string()).default([]).describe("Extra arguments passed to every call, after Obra's own."),
  max_retries: z.number().int('must be a whole number').min(0).max(100).default(5).describe('Backoff waits for a busy session before the iteration gives up (or goes on in a new session: on_lock_exhausted).'),
  retry_initial_delay: seconds().default(2.0).describe('The wait before the first retry of a busy session.'),
  retry_backoff: z.number().min(1, 'must be at least 1 (1 = constant delay)').default(1.5).describe('Each retry waits this many times longer than the one before (1: a constant delay).'),
  retry_max_delay: seconds().default(60).describe('The cap of one busy-session wait.'),
  retry_jitter: z.enum(['none', 'full', 'equal']).default('none').describe('Random spread of each wait, seeded by run, iteration and call so a replay waits the same: none, full (0 to the delay) or equal (half to the delay).'),
  on_lock_exhausted: z.enum(['fail', 'fresh']).default('fail').describe('When the busy-session retries run out: fail the iteration, or continue in a fresh session.'),
  // Waits when the API answers 429 (rate limited) or 529 (overloaded), after the CLI's own retries gave up: a
  // separate policy, longer than a session wait. Jitter is `retry_jitter`.
  rate_limit_max_retries: z.number().int('must be a whole number').min(0).max(100).default(4).describe("Waits when the API answers 429 (rate limited) or 529 (overloaded), after the CLI's own retries gave up."),
  rate_limit_initial_delay: seconds().default(15).describe('The wait before the first rate-limit retry.'),
  rate_limit_backoff: z.number().min(1, 'must be at least 1 (1 = constant delay)').default(2).describe('Each rate-limit wait is this many times longer than the one before.'),
  rate_limit_max_delay: seconds().default(300).describe('The cap of one rate-limit wait.'),
  session_strategy: z.enum(['resume', 'fresh', 'fork']).default('resume').describe('resume: one conversation for the whole task; fresh: a new session each iteration (the prompt carries the history); fork: each iteration a fork of the previous one.'),
  session_id: z.uuid({ error: 'must be a UUID like 123e4567-e89b-12d3-a456-426614174000' }).optional().describe("Use this session id for the run's conversation instead of a new random one."),
  timeout: seconds().default(900).describe('How long one agent call may take before its whole process tree is killed.'),
  idle_timeout: seconds()
    .default(300)
    .describe('How long a call may print nothing (stream-json prints a line for every step of a working agent) before its process group is killed and the call re-issued on the same session. Separate from timeout.'),
  idle_retries: z.number().int('must be a whole number').min(0).max(20).default(2).describe('How many times a silent call is re-issued before the iteration fails.'),
  api_timeout: seconds().optional().describe("How long the CLI waits for the API's response headers before it retries (passed to the CLI as API_TIMEOUT_MS)."),
  usage_limit_margin: duration().pipe(z.number().nonnegative('must not be negative')).default(30).describe("Time added to a usage limit's reset before the next call."),
  max_limit_wait: duration()
    .pipe(z.number().nonnegative('must not be negative').max(24 * 86_400, 'must be at most 24 days (24d)'))
    .default(8 * 86_400)
    .describe('A usage limit that resets later than this is not waited for: the task asks a human. At most 24 days.'),
  model: z.string().optional().describe("The model the CLI uses (its --model); unset: the CLI's own default."),
  max_turns: z.number().int().positive().optional().describe("The CLI's --max-turns for one call; unset: no limit."),
  permission_mode: z
    .enum(['default', 'acceptEdits', 'bypassPermissions', 'plan'])
    .default('acceptEdits')
    .describe(
      'How the CLI treats tool uses it would ask about (headless mode cannot ask): acceptEdits lets the agent create and edit files inside the working directory; default refuses every edit; plan edits nothing; bypassPermissions allows everything (as dangerously_skip_permissions).',
    ),
  allowed_tools: z.array(z.string().min(1, 'a permission rule must not be empty')).default([]).describe('Claude Code permission rules allowed on every call: "Bash(npm run lint:*)", "Bash(git diff:*)", WebFetch.'),
  allow_checks: z.boolean({ error: 'expected true or false' }).default(true).describe("Allow the task's own check commands as Bash tools (Bash(npm test)), so the agent can run them."),
  dangerously_skip_permissions: z.boolean({ error: 'expected true or false' }).default(false).describe('Pass --dangerously-skip-permissions: the agent may do anything. For disposable sandboxes only.'),
  append_system_prompt: z.string().optional().describe("Text the CLI appends to its system prompt (its --append-system-prompt)."),
});

export { AGENT_KINDS, type AgentKind };

/**
 * What every other agent CLI's section holds: its binary, model and extra arguments, and its own timeouts when
 * they should differ from agent.local's (`timeout`, `idle_timeout` — shared by every agent unless set here).
 */
const otherAgentFields = (command: string) => ({
  command: z.string().min(1).default(command).describe(`The ${command} binary (also --agent-bin).`),
  model: z.string().min(1).optional().describe("The model the CLI uses (its -m); unset: the CLI's own default."),
  extra_args: z.array(z.string()).default([]).describe("Extra arguments passed to every call, after Obra's own."),
  timeout: seconds().optional().describe('How long one call may take before its process group is killed; unset: agent.local.timeout.'),
  idle_timeout: seconds().optional().describe('How long a call may print nothing before it is killed and re-issued; unset: agent.local.idle_timeout.'),
});

export const agentCodexSchema = z.strictObject({
  ...otherAgentFields('codex'),
  sandbox: z
    .enum(['read-only', 'workspace-write', 'danger-full-access'])
    .default('workspace-write')
    .describe(
      "Codex's sandbox (-s): workspace-write lets the agent edit inside the task's working directory (Obra's promise for every agent); read-only refuses every write, silently; danger-full-access allows anything.",
    ),
  allow_tmp_writes: z
    .boolean({ error: 'expected true or false' })
    .default(false)
    .describe("Codex's workspace-write also lets the agent write under /tmp and $TMPDIR; Obra turns that off (the agent edits inside the task's working directory only) unless this is true."),
  home: z.string().min(1).optional().describe("CODEX_HOME for the CLI (its sessions and config); unset: the CLI's own (~/.codex). Must exist."),
});

export const agentGeminiSchema = z.strictObject({
  ...otherAgentFields('gemini'),
  approval_mode: z
    .enum(['default', 'auto_edit', 'yolo', 'plan'])
    .default('auto_edit')
    .describe('auto_edit: edits without asking, no shell; default hides every write tool; yolo allows everything; plan only plans.'),
});

export const agentQwenSchema = z.strictObject({
  ...otherAgentFields('qwen'),
  approval_mode: z
    .enum(['default', 'auto-edit', 'yolo', 'plan'])
    .default('auto-edit')
    .describe("Qwen Code's --approval-mode, as agent.gemini.approval_mode (spelled auto-edit here): auto-edit edits without asking, no shell; yolo allows everything."),
});

export const agentOpencodeSchema = z.strictObject({
  ...otherAgentFields('opencode'),
  permission_mode: z
    .enum(['edit', 'read-only', 'config'])
    .default('edit')
    .describe("What opencode may do (its own default allows every edit and command): edit — edits inside the task's folder and the task's checks, nothing else (Obra's promise); read-only — no edits either; config — Obra adds no rules, opencode's configuration decides."),
});

/** USD per million tokens, for agents whose CLI reports tokens but no cost: the cost is then an estimate. */
export const priceSchema = z.strictObject({
  input: z.number({ error: 'expected USD per million input tokens' }).nonnegative('must not be negative').describe('USD per million input tokens.'),
  output: z.number({ error: 'expected USD per million output tokens' }).nonnegative('must not be negative').describe('USD per million output tokens.'),
  cached_input: z
    .number({ error: 'expected USD per million cached input tokens' })
    .nonnegative('must not be negative')
    .optional()
    .describe('USD per million cached input tokens; unset: the input price.'),
});

/** The optional local LLM judge (Ollama's HTTP API). Off unless `enabled: true`. */
export const judgeSchema = z.strictObject({
  enabled: z.boolean({ error: 'expected true or false' }).default(false).describe('Ask the local LLM judge (Ollama) to score every answer too.'),
  model: z.string().min(1, 'must name an Ollama model, e.g. llama3.2').default('llama3.2').describe('The Ollama model, as `ollama list` names it.'),
  host: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL like http://127.0.0.1:11434' })
    .default('http://127.0.0.1:11434')
    .describe("Ollama's address (the ollama client's host)."),
  timeout: seconds().default(30).describe('How long to wait for the judge; a slower judge is skipped with a warning and the score comes from the other evidence.'),
  weight: fraction().default(0.3).describe("Share of the quality score the judge's verdict takes (the rest: checks and heuristics)."),
  max_answer_chars: wholeNumber(200).default(6000).describe('The answer is cut to this many characters before it goes into the rubric prompt.'),
});

export const configSchema = z.strictObject({
  agent: z
    .strictObject({
      kind: z
        .enum(AGENT_KINDS, { error: `expected one of ${AGENT_KINDS.join(', ')}` })
        .default('claude')
        .describe('Which agent CLI drives the tasks (also --agent, agent: in a tasks file); claude reads agent.local, the others their own section.'),
      local: agentLocalSchema.prefault({}).describe('Claude Code (claude -p --output-format stream-json), when kind is claude.'),
      codex: agentCodexSchema.prefault({}).describe('OpenAI Codex (codex exec --json), when kind is codex.'),
      gemini: agentGeminiSchema.prefault({}).describe('Gemini CLI (gemini -p … -o stream-json), when kind is gemini.'),
      qwen: agentQwenSchema.prefault({}).describe('Qwen Code (qwen -p … -o stream-json), when kind is qwen.'),
      opencode: agentOpencodeSchema.prefault({}).describe('opencode (opencode run --format json), when kind is opencode.'),
      prices: z
        .record(z.string(), priceSchema)
        .default({})
        .describe(
          "USD per million tokens for CLIs that report no cost, keyed by model name or by agent kind: the model's entry first, then the kind's, e.g. { gpt-5.5: { input: 1.25, output: 10, cached_input: 0.125 } }. A cost computed from them is marked as an estimate.",
        ),
      max_concurrent_calls: z
        .number({ error: 'expected a whole number, or null for queue.concurrency' })
        .int('must be a whole number')
        .min(1, 'must be at least 1')
        .nullable()
        .default(null)
        .describe('Agent calls in flight at once across every task of the store (every obra work and obra run on it); null: queue.concurrency.'),
    })
    .prefault({})
    .describe("The agent CLI that drives the tasks, and its section per kind."),
  task: z
    .strictObject({
      max_iterations: wholeNumber(1).max(100_000, 'must be at most 100000').default(10).describe('The iteration budget (also --max-iterations, OBRA_MAX_ITERATIONS).'),
      checks: z.array(z.string().min(1, 'a check must not be empty')).default([]).describe('Shell commands run in the workdir after every answer; all must pass for done (also --check).'),
      check_timeout: seconds().default(300).describe('How long one check may run before its process group is killed.'),
      check_max_output_bytes: wholeNumber(1024).default(16 * 1024 * 1024).describe('A check that prints more than this many bytes is stopped (its tail is kept).'),
      check_tail_chars: wholeNumber(100).default(1500).describe("How much of a check's output (its last characters) is kept as evidence and feedback."),
      required_markers: z.array(z.string().min(1)).default([]).describe('Text every accepted answer must contain.'),
    })
    .prefault({})
    .describe("What a task must do: its iteration budget, its checks, what every answer must contain."),
  budget: z
    .strictObject({
      max_cost_usd: z
        .number({ error: 'expected an amount in USD, or null for no limit' })
        .positive('must be more than 0')
        .nullable()
        .default(null)
        .describe("Stop when the sum of the calls' cost (the CLI's total_cost_usd, or the agent.prices estimate) reaches this; null: no limit."),
      max_turns: wholeNumber(1).nullable().default(null).describe("Stop when the sum of the CLI's num_turns reaches this; null: no limit."),
      max_wall_seconds: seconds().nullable().default(null).describe('Stop when the run has been working this long (time waiting for a human or paused does not count); null: no limit.'),
    })
    .prefault({})
    .describe("Limits that end a run (budget_exceeded, exit 5) once crossed, checked after each iteration."),
  context: z
    .strictObject({
      max_chars: wholeNumber(500).default(16_000).describe('The size budget of the assembled context, in characters (~4 characters a token).'),
      history_window: wholeNumber(0).max(100, 'must be at most 100').default(5).describe('How many earlier iterations the next prompt summarises.'),
    })
    .prefault({})
    .describe("What the next prompt carries."),
  quality: z
    .strictObject({
      weights: z
        .strictObject({
          syntax: weight().default(0.2).describe("Weight of syntax (a usable reply) in the quality score."),
          requirements: weight().default(0.3).describe("Weight of requirements (the task's key words the answer covers, required markers, no question instead of work)."),
          code_quality: weight().default(0.3).describe('Weight of code quality (error words; claimed changes without tool use; claimed passing tests while checks fail).'),
          testing: weight().default(0.2).describe('Weight of testing (the share of checks that pass; without checks, whether the answer reports verification).'),
        })
        .prefault({})
        .refine((w) => w.syntax + w.requirements + w.code_quality + w.testing > 0, { message: 'at least one weight must be above 0' })
        .describe("The original Obra's parts of the quality score, normalised by their sum."),
      min_answer_chars: wholeNumber(0).default(20).describe('Answers shorter than this (without a STATUS line) are "too short".'),
      judge: judgeSchema.prefault({}).describe('The optional local LLM judge (Ollama).'),
    })
    .prefault({})
    .describe("How an answer is scored: the heuristics' weights and the optional LLM judge."),
  confidence: z
    .strictObject({
      weights: z
        .strictObject({
          validation: weight().default(0.3).describe('Weight of the validation verdict (1 or 0) in the confidence.'),
          quality: weight().default(0.4).describe('Weight of the quality score in the confidence.'),
          history: weight().default(0.2).describe('Weight of the history (improving, repeating or worse than the iterations before).'),
          agent: weight().default(0.1).describe("Weight of the agent's own signals (an error result, a turn limit, a done the checks contradict, a question instead of work)."),
        })
        .prefault({})
        .refine((w) => w.validation + w.quality + w.history + w.agent > 0, { message: 'at least one weight must be above 0' })
        .describe('How much each kind of evidence counts towards confidence, normalised by their sum.'),
    })
    .prefault({})
    .describe("How sure Obra is of an iteration's verdict."),
  decision: z
    .strictObject({
      proceed_threshold: fraction().default(0.7).describe('Quality at or above: proceed (or done, when the agent says so and the checks pass).'),
      escalate_threshold: fraction().default(0.5).describe('Quality below: escalate to a human. Must not be above proceed_threshold.'),
      min_confidence: fraction().default(0.5).describe('Confidence below: clarify instead of proceeding or accepting done.'),
      stuck_after: wholeNumber(2).max(20, 'must be at most 20').default(3).describe('The same answer or the same failure this many times in a row is "stuck": escalate.'),
      max_retries_per_goal: wholeNumber(0).default(2).describe('Retries (or clarifications) with feedback in a row before escalating.'),
      checkpoint_every: wholeNumber(1).nullable().default(null).describe('Persist and pause for review every N iterations; null: never.'),
    })
    .prefault({})
    .refine((d) => d.escalate_threshold <= d.proceed_threshold, {
      error: (issue) => {
        const d = issue.input as { escalate_threshold: number; proceed_threshold: number };
        return `escalate_threshold (${d.escalate_threshold}) must not be above proceed_threshold (${d.proceed_threshold})`;
      },
      path: ['escalate_threshold'],
    })
    .describe("How the DecisionEngine turns an iteration's scores into proceed, retry, clarify, escalate, checkpoint or done."),
  logging: z
    .strictObject({
      file: z.boolean({ error: 'expected true or false' }).default(true).describe('Write runs/<id>/run.log (structured JSON lines, pino) for runs driven from the CLI.'),
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('The least severe level written to the log file (debug adds every iteration state and the agent\'s progress).'),
    })
    .prefault({})
    .describe("The run.log file of runs driven from the CLI."),
  store: z
    .strictObject({
      dir: z.string().min(1).default('.obra').describe('Where runs are kept, relative to the working directory (also --db, OBRA_DB).'),
      sync: z
        .enum(['transition', 'strict'])
        .default('transition')
        .describe(
          "When journal lines are fdatasync'd: transition makes every transition durable before anything leaves the process (agent call, check, judge) and whenever the run comes to rest (write-ahead, one fdatasync per group of lines); strict fdatasyncs every step before the next one starts.",
        ),
    })
    .prefault({})
    .describe("Where runs are kept, and when the journal is synced."),
  queue: z
    .strictObject({
      concurrency: wholeNumber(1).max(1000, 'must be at most 1000').default(4).describe('How many tasks one obra work (or obra worker) drives at once (also --concurrency).'),
    })
    .prefault({})
    .describe("Many tasks at once (obra work, obra worker)."),
  merge: z
    .strictObject({
      resolve: z
        .enum(['human', 'agent'], { error: 'expected human or agent' })
        .default('human')
        .describe("What obra merge does when a task's branch conflicts with its base: human refuses (exit 11, nothing changed; you merge it yourself), agent queues a task that resolves it (as obra merge --resolve; docs/resolving-conflicts.md)."),
      strategy: z
        .enum(['merge', 'rebase', 'squash'], { error: 'expected merge, rebase or squash' })
        .default('merge')
        .describe('How obra merge --all and obra merge A B C land a task (also --strategy): merge — a merge commit per task (--no-ff); rebase — its commits replayed on the base; squash — one commit per task (docs/landing.md).'),
    })
    .prefault({})
    .describe('How obra merge lands a task.'),
  notify: z
    .strictObject({
      webhooks: z
        .array(z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://hooks.example.com/obra' }))
        .default([])
        .describe('http(s) URLs that get a JSON POST per event: { event, runId, task, status, reason, link, at } (retried; never holds up a task).'),
      webhook_timeout: seconds().default(10).describe('How long one POST may take before it counts as failed.'),
      webhook_retries: wholeNumber(0).max(10, 'must be at most 10').default(4).describe('A failed POST (no answer, or a 5xx or 429 status) is sent again this many times, after webhook_retry_delay.'),
      webhook_retry_delay: seconds().default(2).describe('The wait before a POST is sent again, doubled each time.'),
      desktop: z.boolean({ error: 'expected true or false' }).default(true).describe('A desktop notification through notify-send, where it is installed.'),
      bell: z.boolean({ error: 'expected true or false' }).default(true).describe("obra work rings the terminal's bell (only when its stderr is a terminal)."),
      link: z
        .url({ protocol: /^https?$/, error: 'expected the viewer\'s address, such as http://127.0.0.1:7070' })
        .default('http://127.0.0.1:7070')
        .describe("Where obra view serves the board: each notification links to the task's page there."),
    })
    .prefault({})
    .describe("Who hears of a task that needs a human, is done, failed or is parked until a usage limit resets: webhooks, the desktop, the terminal's bell. A notification never holds up or fails a task."),
  engine: z
    .enum(ENGINES, { error: 'expected local or restate' })
    .default('local')
    .describe('Where tasks are queued and kept: local (a store folder on this machine) or restate (a Restate server; obra worker processes drive them). Also --engine.'),
  restate: z
    .strictObject({
      ingress_url: urlList('http://127.0.0.1:8080').describe("Restate's ingress, where Obra's services are called (obra restate up prints it); a cluster's nodes, tried in turn (a list, or a,b,c)."),
      admin_url: urlList('http://127.0.0.1:9070').describe("Restate's admin API, where obra worker registers Obra's services; a cluster's nodes, tried in turn."),
      lease_seconds: duration()
        .pipe(z.number().min(1, 'must be at least 1 second').max(3600, 'must be at most 3600 seconds (1h)'))
        .default(15)
        .describe('A worker renews its hold on a task within this time; a worker silent this long loses its tasks to the other workers.'),
      work_dir: z
        .string()
        .min(1)
        .default('~/.obra/work')
        .describe("Where a worker keeps the checkouts of tasks submitted with --repo-url (<work_dir>/<runId>; ~ is the home folder; also --work-dir). The same path on every worker keeps the agent's project folder name the same."),
      identity_keys: z
        .array(z.string().regex(/^publickeyv1_[1-9A-HJ-NP-Za-km-z]+$/, 'expected a key such as publickeyv1_2G8dCQhArfvGpzPw5Vx2ALciR4xCLHfS5YaT93XjNxX9'))
        .default([])
        .describe("The server's request-identity public keys (publickeyv1_…, printed by obra restate up): a worker then refuses calls not signed by the server. A worker on the store of an obra restate up finds its key there."),
    })
    .prefault({})
    .describe("The Restate engine (engine: restate): where its server is, and its workers' leases, checkouts and keys."),
});

export type ObraConfig = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type JudgeConfig = z.infer<typeof judgeSchema>;

export const defaultConfig = (): ObraConfig => configSchema.parse({});
