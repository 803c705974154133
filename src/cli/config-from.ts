import { flagLayer } from '../config/flags.js';
import { loadConfig } from '../config/load.js';
import type { ObraConfig } from '../config/schema.js';

/** The flags every command shares, and the config they select. Kept apart so that light commands load no engine. */

export interface CommonFlags {
  config?: string;
  db?: string;
  agentBin?: string;
  /** `--agent <kind>` (run, submit). */
  agent?: string;
  engine?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  set?: string[];
}

/** Config from the file, env and the flags that map onto config keys. */
export function configFrom(flags: CommonFlags, extra: Record<string, unknown> = {}): ObraConfig {
  const named = Object.fromEntries(Object.entries(extra).map(([path, value]) => [path, { value, flag: path }]));
  const config = loadConfig({ file: flags.config ?? null, flags: flagLayer(flags, named) }).config;
  // --agent-bin is the binary of the agent that runs: when the file or OBRA_AGENT__KIND chose it, read again.
  if (flags.agentBin === undefined || flags.agent !== undefined || config.agent.kind === 'claude') return config;
  return loadConfig({ file: flags.config ?? null, flags: flagLayer(flags, named, config.agent.kind) }).config;
}
