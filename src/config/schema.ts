import { z } from 'zod';

/**
 * Every option Obra reads, with its default. Keys are snake_case like the user's original YAML
 * (`agent.local.max_retries`, ...). Objects are strict: an unknown key is an error with a suggestion, never
 * silently ignored.
 */

const fraction = (name: string) =>
  z.number({ error: `${name} must be a number between 0 and 1` }).min(0, `${name} must be at least 0`).max(1, `${name} must be at most 1`);
const seconds = z.number({ error: 'expected a number of seconds' }).positive('must be more than 0 seconds');

export const agentLocalSchema = z.strictObject({
  /** The Claude Code binary (overridden by --agent-bin and OBRA_CLAUDE_BIN). */
  command: z.string().min(1).default('claude'),
  /** Extra arguments passed to every call, after Obra's own. */
  extra_args: z.array(z.string()).default([]),
  max_retries: z.number().int('must be a whole number').min(0).max(100).default(5),
  retry_initial_delay: seconds.default(2.0),
  retry_backoff: z.number().min(1, 'must be at least 1 (1 = constant delay)').default(1.5),
  retry_max_delay: seconds.default(60),
  retry_jitter: z.enum(['none', 'full', 'equal']).default('none'),
  on_lock_exhausted: z.enum(['fail', 'fresh']).default('fail'),
  session_strategy: z.enum(['resume', 'fresh', 'fork']).default('resume'),
  /** Use this session id for the run's conversation instead of a new random one. */
  session_id: z.uuid({ error: 'must be a UUID like 123e4567-e89b-12d3-a456-426614174000' }).optional(),
  /** Seconds one agent call may take before its whole process tree is killed. */
  timeout: seconds.default(900),
  model: z.string().optional(),
  max_turns: z.number().int().positive().optional(),
  permission_mode: z.enum(['default', 'acceptEdits', 'bypassPermissions', 'plan']).optional(),
  allowed_tools: z.array(z.string()).optional(),
  append_system_prompt: z.string().optional(),
});

export const configSchema = z.strictObject({
  agent: z
    .strictObject({
      local: agentLocalSchema.prefault({}),
    })
    .prefault({}),
  task: z
    .strictObject({
      max_iterations: z.number().int('must be a whole number').min(1, 'must be at least 1').max(100_000).default(10),
      /** Shell commands run in the workdir after every answer; all must pass for `done`. */
      checks: z.array(z.string().min(1)).default([]),
      check_timeout: seconds.default(300),
      /** Text every accepted answer must contain. */
      required_markers: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  budget: z
    .strictObject({
      max_cost_usd: z.number().positive().nullable().default(null),
      max_turns: z.number().int().positive().nullable().default(null),
      max_wall_seconds: z.number().positive().nullable().default(null),
    })
    .prefault({}),
  context: z
    .strictObject({
      /** The size budget of the assembled context, in characters (~4 characters a token). */
      max_chars: z.number().int().min(500).default(16_000),
      /** How many earlier iterations the next prompt summarises. */
      history_window: z.number().int().min(0).max(100).default(5),
    })
    .prefault({}),
  quality: z
    .strictObject({
      /** The original Obra's weights: syntax 0.2, requirements 0.3, code quality 0.3, testing 0.2. */
      weights: z
        .strictObject({
          syntax: fraction('weight').default(0.2),
          requirements: fraction('weight').default(0.3),
          code_quality: fraction('weight').default(0.3),
          testing: fraction('weight').default(0.2),
        })
        .prefault({}),
      min_answer_chars: z.number().int().min(0).default(20),
    })
    .prefault({}),
  decision: z
    .strictObject({
      proceed_threshold: fraction('decision.proceed_threshold').default(0.7),
      escalate_threshold: fraction('decision.escalate_threshold').default(0.5),
      min_confidence: fraction('decision.min_confidence').default(0.5),
      /** The same failure this many times in a row is "stuck": escalate. */
      stuck_after: z.number().int().min(2).default(3),
      max_retries_per_goal: z.number().int().min(0).default(2),
    })
    .prefault({})
    .refine((d) => d.escalate_threshold <= d.proceed_threshold, {
      message: 'decision.escalate_threshold must not be above decision.proceed_threshold',
    }),
  store: z
    .strictObject({
      /** Where runs are kept (relative to the working directory). */
      dir: z.string().min(1).default('.obra'),
    })
    .prefault({}),
});

export type ObraConfig = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export const defaultConfig = (): ObraConfig => configSchema.parse({});
