import { UserError } from '../core/errors.js';
import { findExecutable } from './claude-code-agent.js';
import type { CliNames } from './cli-stopped.js';
import type { SessionLocks } from './session-lock.js';
import type { Price } from './usage.js';

/**
 * What the agents of every CLI but Claude Code share outside their calls (each call runs through runCli, under
 * underSessionLock): the options their config section `agent.<kind>` fills (agent-for.ts), and the preflight.
 */

export interface CliAgentOptions {
  /** Path or name of the CLI's binary. */
  command: string;
  timeoutMs: number;
  idleTimeoutMs?: number;
  model?: string;
  extraArgs?: string[];
  /** Variables added to this process's environment for the CLI. */
  env?: Record<string, string>;
  /** Price for the cost estimate when the CLI reports no cost. */
  price?: Price | null;
  locks?: SessionLocks;
  killGraceMs?: number;
  maxOutputBytes?: number;
}

/** Throws a `UserError` naming the fix when the CLI's binary cannot be run, before a run is created. */
export function requireBinary(command: string, env: NodeJS.ProcessEnv, cli: CliNames): void {
  const { kind, product, npmPackage } = cli;
  const found = findExecutable(command, env);
  if (found === 'missing') throw new UserError(`the ${kind} binary "${command}" was not found — install ${product} (npm i -g ${npmPackage}) or pass --agent-bin <path> / set agent.${kind}.command`);
  if (found === 'not-executable') throw new UserError(`the ${kind} binary "${command}" is not executable — chmod +x it or pass another --agent-bin`);
  if (found === 'directory') throw new UserError(`the ${kind} binary "${command}" is a directory — point --agent-bin at the ${kind} executable inside it`);
}
