import { parseSetFlags } from './describe.js';
import { parseScalar, setPath, type ConfigLayers } from './load.js';

/** The CLI flags that map onto config keys (shared by every command that reads the config). */
export interface ConfigFlags {
  db?: string;
  agentBin?: string;
  /** `--agent <kind>`: agent.kind. */
  agent?: string;
  /** `--engine local|restate`. */
  engine?: string;
  /** `--set key=value`, repeatable. */
  set?: string[];
}

/** An agent kind's section of the config: Claude Code's is agent.local, the others' agent.<kind>. */
export const agentSectionOf = <K extends string>(kind: K): 'local' | Exclude<K, 'claude'> => (kind === 'claude' ? 'local' : (kind as Exclude<K, 'claude'>));

/** The config key of an agent kind's binary: Claude Code's is agent.local.command, the others' agent.<kind>.command. */
export const commandKeyOf = (kind: string): string => `agent.${agentSectionOf(kind)}.command`;

/**
 * Turns CLI flags into the config's top layer: `--db` → store.dir, `--agent` → agent.kind, `--agent-bin` → the
 * binary of that kind (`binKind`, when the kind comes from elsewhere; Claude Code's agent.local.command by default),
 * `--set k=v` → any key, plus command-specific ones in `extra` (`task.max_iterations` from --max-iterations).
 * Each leaf remembers the flag that set it, for `obra config` and error messages.
 */
export function flagLayer(flags: ConfigFlags, extra: Record<string, { value: unknown; flag: string }> = {}, binKind?: string): NonNullable<ConfigLayers['flags']> {
  const values: Record<string, unknown> = {};
  const names: Record<string, string> = {};
  const set = (path: string, value: unknown, flag: string) => {
    if (value === undefined) return;
    setPath(values, path, value);
    names[path] = flag;
  };
  for (const { path, raw } of parseSetFlags(flags.set ?? [])) set(path, parseScalar(raw), `--set ${path}`);
  set('store.dir', flags.db, '--db');
  set('agent.kind', flags.agent, '--agent');
  set(commandKeyOf(flags.agent ?? binKind ?? 'claude'), flags.agentBin, '--agent-bin');
  set('engine', flags.engine, '--engine');
  for (const [path, { value, flag }] of Object.entries(extra)) set(path, value, flag);
  return { values, names };
}
