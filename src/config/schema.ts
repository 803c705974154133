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
  /** The Claude Code binary (overridden by --agent-bin and OBRA_CLAUDE_BIN). */
  command: z.string().min(1).default('claude'),
  /** Extra arguments passed to every call, after Obra's own. */
  extra_args: z.array(z.string()).default([]),
  max_retries: z.number().int('must be a whole number').min(0).max(100).default(5),
  retry_initial_delay: seconds().default(2.0),
  retry_backoff: z.number().min(1, 'must be at least 1 (1 = constant delay)').default(1.5),
  retry_max_delay: seconds().default(60),
  retry_jitter: z.enum(['none', 'full', 'equal']).default('none'),
  on_lock_exhausted: z.enum(['fail', 'fresh']).default('fail'),
  /**
   * Waits when the API answers 429 (rate limited) or 529 (overloaded), after the CLI's own retries gave up:
   * a separate policy, longer than a session wait. Jitter is `retry_jitter`.
   */
  rate_limit_max_retries: z.number().int('must be a whole number').min(0).max(100).default(4),
  rate_limit_initial_delay: seconds().default(15),
  rate_limit_backoff: z.number().min(1, 'must be at least 1 (1 = constant delay)').default(2),
  rate_limit_max_delay: seconds().default(300),
  session_strategy: z.enum(['resume', 'fresh', 'fork']).default('resume'),
  /** Use this session id for the run's conversation instead of a new random one. */
  session_id: z.uuid({ error: 'must be a UUID like 123e4567-e89b-12d3-a456-426614174000' }).optional(),
  /** Seconds one agent call may take before its whole process tree is killed. */
  timeout: seconds().default(900),
  /**
   * Seconds a call may print nothing (stream-json prints a line for every step of a working agent) before its
   * process group is killed and the call re-issued on the same session. Separate from `timeout`.
   */
  idle_timeout: seconds().default(300),
  /** How many times a silent call is re-issued before the iteration fails. */
  idle_retries: z.number().int('must be a whole number').min(0).max(20).default(2),
  /** Seconds the CLI waits for the API's response headers before it retries (passed as API_TIMEOUT_MS). */
  api_timeout: seconds().optional(),
  /** Time added to a usage limit's reset before the next call. */
  usage_limit_margin: duration().pipe(z.number().nonnegative('must not be negative')).default(30),
  /** A usage limit that resets later than this is not waited for: the task asks a human. At most 24 days. */
  max_limit_wait: duration()
    .pipe(z.number().nonnegative('must not be negative').max(24 * 86_400, 'must be at most 24 days (24d)'))
    .default(8 * 86_400),
  model: z.string().optional(),
  max_turns: z.number().int().positive().optional(),
  /**
   * How the CLI treats tool uses it would ask about (headless mode cannot ask): `acceptEdits` lets the agent
   * create and edit files inside the working directory; `default` refuses every edit; `plan` edits nothing;
   * `bypassPermissions` allows everything (as `dangerously_skip_permissions`).
   */
  permission_mode: z.enum(['default', 'acceptEdits', 'bypassPermissions', 'plan']).default('acceptEdits'),
  /** Claude Code permission rules allowed on every call: `Bash(npm run lint)`, `Bash(git diff:*)`, `WebFetch`. */
  allowed_tools: z.array(z.string().min(1, 'a permission rule must not be empty')).default([]),
  /** Allow the task's own check commands as Bash tools (`Bash(npm test)`), so the agent can run them. */
  allow_checks: z.boolean({ error: 'expected true or false' }).default(true),
  /** Pass `--dangerously-skip-permissions`: the agent may do anything. For disposable sandboxes only. */
  dangerously_skip_permissions: z.boolean({ error: 'expected true or false' }).default(false),
  append_system_prompt: z.string().optional(),
});

export { AGENT_KINDS, type AgentKind };

/**
 * What every other agent CLI's section holds: its binary, model and extra arguments, and its own timeouts when
 * they should differ from agent.local's (`timeout`, `idle_timeout` — shared by every agent unless set here).
 */
const otherAgentFields = (command: string) => ({
  /** The CLI's binary (overridden by --agent-bin). */
  command: z.string().min(1).default(command),
  model: z.string().min(1).optional(),
  /** Extra arguments passed to every call, after Obra's own. */
  extra_args: z.array(z.string()).default([]),
  /** Seconds one call may take before its process group is killed (default: agent.local.timeout). */
  timeout: seconds().optional(),
  /** Seconds a call may print nothing before it is killed and re-issued (default: agent.local.idle_timeout). */
  idle_timeout: seconds().optional(),
});

export const agentCodexSchema = z.strictObject({
  ...otherAgentFields('codex'),
  /**
   * Codex's sandbox (`-s`): `workspace-write` lets the agent edit inside the task's working directory (Obra's
   * promise for every agent); `read-only` refuses every write, silently; `danger-full-access` allows anything.
   */
  sandbox: z.enum(['read-only', 'workspace-write', 'danger-full-access']).default('workspace-write'),
  /**
   * Codex's `workspace-write` also lets the agent write under /tmp and $TMPDIR; Obra turns that off (the agent
   * edits inside the task's working directory only) unless this is true.
   */
  allow_tmp_writes: z.boolean({ error: 'expected true or false' }).default(false),
  /** CODEX_HOME for the CLI (its sessions and config); default: the CLI's own (~/.codex). Must exist. */
  home: z.string().min(1).optional(),
});

export const agentGeminiSchema = z.strictObject({
  ...otherAgentFields('gemini'),
  /** `auto_edit`: edits without asking, no shell; `default` hides every write tool; `yolo` allows everything. */
  approval_mode: z.enum(['default', 'auto_edit', 'yolo', 'plan']).default('auto_edit'),
});

export const agentQwenSchema = z.strictObject({
  ...otherAgentFields('qwen'),
  approval_mode: z.enum(['default', 'auto-edit', 'yolo', 'plan']).default('auto-edit'),
});

export const agentOpencodeSchema = z.strictObject({
  ...otherAgentFields('opencode'),
});

/** USD per million tokens, for agents whose CLI reports tokens but no cost: the cost is then an estimate. */
export const priceSchema = z.strictObject({
  input: z.number({ error: 'expected USD per million input tokens' }).nonnegative('must not be negative'),
  output: z.number({ error: 'expected USD per million output tokens' }).nonnegative('must not be negative'),
  /** Cached input tokens (default: the input price). */
  cached_input: z.number({ error: 'expected USD per million cached input tokens' }).nonnegative('must not be negative').optional(),
});

/** The optional local LLM judge (Ollama's HTTP API). Off unless `enabled: true`. */
export const judgeSchema = z.strictObject({
  enabled: z.boolean({ error: 'expected true or false' }).default(false),
  /** An Ollama model name, as `ollama list` shows it. */
  model: z.string().min(1, 'must name an Ollama model, e.g. llama3.2').default('llama3.2'),
  /** Ollama's address (the `ollama` client's `host`). */
  host: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL like http://127.0.0.1:11434' }).default('http://127.0.0.1:11434'),
  /** Seconds to wait for the judge; then the score falls back to the other evidence. */
  timeout: seconds().default(30),
  /** Share of the quality score the judge's verdict takes (the rest: checks and heuristics). */
  weight: fraction().default(0.3),
  /** The answer is cut to this many characters before it goes into the rubric prompt. */
  max_answer_chars: wholeNumber(200).default(6000),
});

export const configSchema = z.strictObject({
  agent: z
    .strictObject({
      /** Which agent CLI drives the tasks (`--agent`, `agent:` in a tasks file); `claude` reads agent.local. */
      kind: z.enum(AGENT_KINDS, { error: `expected one of ${AGENT_KINDS.join(', ')}` }).default('claude'),
      local: agentLocalSchema.prefault({}),
      codex: agentCodexSchema.prefault({}),
      gemini: agentGeminiSchema.prefault({}),
      qwen: agentQwenSchema.prefault({}),
      opencode: agentOpencodeSchema.prefault({}),
      /**
       * Prices for CLIs that report no cost, keyed by model name or by agent kind (`codex`): the model's entry
       * first, then the kind's. A cost computed from them is marked as an estimate.
       */
      prices: z.record(z.string(), priceSchema).default({}),
      /**
       * Agent calls in flight at once across every task of the store (every `obra work` and `obra run` on it);
       * null: queue.concurrency.
       */
      max_concurrent_calls: z.number({ error: 'expected a whole number, or null for queue.concurrency' }).int('must be a whole number').min(1, 'must be at least 1').nullable().default(null),
    })
    .prefault({}),
  task: z
    .strictObject({
      max_iterations: wholeNumber(1).max(100_000, 'must be at most 100000').default(10),
      /** Shell commands run in the workdir after every answer; all must pass for `done`. */
      checks: z.array(z.string().min(1, 'a check must not be empty')).default([]),
      /** Seconds one check may run before its process group is killed. */
      check_timeout: seconds().default(300),
      /** A check that prints more than this many bytes is stopped (its tail is kept). */
      check_max_output_bytes: wholeNumber(1024).default(16 * 1024 * 1024),
      /** How much of a check's output (its last characters) is kept as evidence and feedback. */
      check_tail_chars: wholeNumber(100).default(1500),
      /** Text every accepted answer must contain. */
      required_markers: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  budget: z
    .strictObject({
      /** Stop when the sum of the CLI's `total_cost_usd` reaches this (null: no limit). */
      max_cost_usd: z.number({ error: 'expected an amount in USD, or null for no limit' }).positive('must be more than 0').nullable().default(null),
      /** Stop when the sum of the CLI's `num_turns` reaches this. */
      max_turns: wholeNumber(1).nullable().default(null),
      /** Stop when the run has been working this long (time waiting for a human or paused does not count). */
      max_wall_seconds: seconds().nullable().default(null),
    })
    .prefault({}),
  context: z
    .strictObject({
      /** The size budget of the assembled context, in characters (~4 characters a token). */
      max_chars: wholeNumber(500).default(16_000),
      /** How many earlier iterations the next prompt summarises. */
      history_window: wholeNumber(0).max(100, 'must be at most 100').default(5),
    })
    .prefault({}),
  quality: z
    .strictObject({
      /** The original Obra's weights: syntax 0.2, requirements 0.3, code quality 0.3, testing 0.2. */
      weights: z
        .strictObject({
          syntax: weight().default(0.2),
          requirements: weight().default(0.3),
          code_quality: weight().default(0.3),
          testing: weight().default(0.2),
        })
        .prefault({})
        .refine((w) => w.syntax + w.requirements + w.code_quality + w.testing > 0, { message: 'at least one weight must be above 0' }),
      /** Answers shorter than this (without a STATUS line) are "too short". */
      min_answer_chars: wholeNumber(0).default(20),
      judge: judgeSchema.prefault({}),
    })
    .prefault({}),
  confidence: z
    .strictObject({
      /** How much each kind of evidence counts towards confidence (normalised by their sum). */
      weights: z
        .strictObject({
          validation: weight().default(0.3),
          quality: weight().default(0.4),
          history: weight().default(0.2),
          agent: weight().default(0.1),
        })
        .prefault({})
        .refine((w) => w.validation + w.quality + w.history + w.agent > 0, { message: 'at least one weight must be above 0' }),
    })
    .prefault({}),
  decision: z
    .strictObject({
      /** Quality at or above: proceed (or done, when the agent says so and the checks pass). */
      proceed_threshold: fraction().default(0.7),
      /** Quality below: escalate to a human. */
      escalate_threshold: fraction().default(0.5),
      /** Confidence below: clarify instead of proceeding or accepting `done`. */
      min_confidence: fraction().default(0.5),
      /** The same answer or the same failing check this many times in a row is "stuck": escalate. */
      stuck_after: wholeNumber(2).max(20, 'must be at most 20').default(3),
      /** Retries with feedback in a row before escalating. */
      max_retries_per_goal: wholeNumber(0).default(2),
      /** Persist and pause for review every N iterations (null: never). */
      checkpoint_every: wholeNumber(1).nullable().default(null),
    })
    .prefault({})
    .refine((d) => d.escalate_threshold <= d.proceed_threshold, {
      error: (issue) => {
        const d = issue.input as { escalate_threshold: number; proceed_threshold: number };
        return `escalate_threshold (${d.escalate_threshold}) must not be above proceed_threshold (${d.proceed_threshold})`;
      },
      path: ['escalate_threshold'],
    }),
  logging: z
    .strictObject({
      /** Write `runs/<id>/run.log` (structured JSON lines, pino) for runs started from the CLI. */
      file: z.boolean({ error: 'expected true or false' }).default(true),
      /** The least severe level written to the log file. */
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
    })
    .prefault({}),
  store: z
    .strictObject({
      /** Where runs are kept (relative to the working directory). */
      dir: z.string().min(1).default('.obra'),
      /**
       * When journal lines are fdatasync'd: `transition` makes every transition durable before anything leaves
       * the process (agent call, check, judge) and whenever the run comes to rest (write-ahead, one fdatasync per
       * group of lines); `strict` fdatasyncs every step before the next one starts.
       */
      sync: z.enum(['transition', 'strict']).default('transition'),
    })
    .prefault({}),
  queue: z
    .strictObject({
      /** How many queued tasks one `obra work` drives at once (also --concurrency). */
      concurrency: wholeNumber(1).max(1000, 'must be at most 1000').default(4),
    })
    .prefault({}),
  /** How `obra merge --all` and `obra merge A B C` land done tasks on their base branch (see docs/landing.md). */
  merge: z
    .strictObject({
      /**
       * `merge`: a merge commit per task (`--no-ff`); `rebase`: the task's commits replayed on the base; `squash`:
       * one commit per task. `--strategy` overrides it.
       */
      strategy: z.enum(['merge', 'rebase', 'squash'], { error: 'expected merge, rebase or squash' }).default('merge'),
    })
    .prefault({}),
  /**
   * Who is told when a task needs a human, is done, failed, or is parked until a usage limit resets (by `obra work`):
   * webhooks, the desktop, the terminal's bell. A notification never holds up or fails a task.
   */
  notify: z
    .strictObject({
      /** URLs that get a JSON POST per event: `{ event, runId, task, status, reason, link, at }`. */
      webhooks: z.array(z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://hooks.example.com/obra' })).default([]),
      /** Seconds one POST may take before it counts as failed. */
      webhook_timeout: seconds().default(10),
      /** A failed POST (no answer, or a 5xx or 429 status) is sent again this many times... */
      webhook_retries: wholeNumber(0).max(10, 'must be at most 10').default(4),
      /** ...after this long, doubled each time. */
      webhook_retry_delay: seconds().default(2),
      /** A desktop notification through `notify-send`, where it is installed. */
      desktop: z.boolean({ error: 'expected true or false' }).default(true),
      /** `obra work` rings the terminal's bell (only when its stderr is a terminal). */
      bell: z.boolean({ error: 'expected true or false' }).default(true),
      /** Where `obra view` serves the board: each notification links to the task's page there. */
      link: z.url({ protocol: /^https?$/, error: 'expected the viewer\'s address, such as http://127.0.0.1:7070' }).default('http://127.0.0.1:7070'),
    })
    .prefault({}),
  /** Where tasks run: `local` (a store folder on this machine) or `restate` (a Restate server; `obra worker`s drive them). */
  engine: z.enum(ENGINES, { error: 'expected local or restate' }).default('local'),
  restate: z
    .strictObject({
      /** Restate's ingress, where Obra's services are called (`obra restate up` prints it); a cluster's nodes, tried in turn. */
      ingress_url: urlList('http://127.0.0.1:8080'),
      /** Restate's admin API, where `obra worker` registers its services; a cluster's nodes, tried in turn. */
      admin_url: urlList('http://127.0.0.1:9070'),
      /** A worker renews its hold on a task this often over; a worker silent this long loses its tasks to others. */
      lease_seconds: duration().pipe(z.number().min(1, 'must be at least 1 second').max(3600, 'must be at most 3600 seconds (1h)')).default(15),
      /**
       * Where a worker keeps the checkouts of tasks submitted with --repo-url (`<work_dir>/<runId>`; `~` is the
       * home folder). The same path on every worker keeps the agent's project folder name the same.
       */
      work_dir: z.string().min(1).default('~/.obra/work'),
      /**
       * The server's request-identity public keys (`publickeyv1_…`, printed by `obra restate up`): a worker then
       * refuses calls not signed by the server. A worker on the store of an `obra restate up` finds its key there.
       */
      identity_keys: z.array(z.string().regex(/^publickeyv1_[1-9A-HJ-NP-Za-km-z]+$/, 'expected a key such as publickeyv1_2G8dCQhArfvGpzPw5Vx2ALciR4xCLHfS5YaT93XjNxX9')).default([]),
    })
    .prefault({}),
});

export type ObraConfig = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type JudgeConfig = z.infer<typeof judgeSchema>;

export const defaultConfig = (): ObraConfig => configSchema.parse({});
