import { UserError } from '../core/errors.js';
import { getPath, type LoadedConfig } from './load.js';

/**
 * `obra config`: every effective value, one a line, with where it came from (a file, an env var, a flag) —
 * defaults unmarked. Keys whose value is unset (optional options) show `(unset)`.
 */
export function formatEffectiveConfig(loaded: LoadedConfig): string {
  const keys = Object.keys(loaded.sources).sort((a, b) => a.localeCompare(b));
  const rows = keys.map((key) => {
    const value = getPath(loaded.config as unknown as Record<string, unknown>, key);
    const source = loaded.sources[key]!;
    return [key, value === undefined ? '(unset)' : JSON.stringify(value), source === 'default' ? '' : `# ${source}`] as const;
  });
  const keyWidth = Math.max(...rows.map((r) => r[0].length));
  const valueWidth = Math.max(...rows.map((r) => r[1].length));
  const header = loaded.file ? `# config file: ${loaded.file}\n` : '# no config file (./obra.yaml not found); defaults, env and flags only\n';
  return header + rows.map(([key, value, source]) => `${key.padEnd(keyWidth)}  ${source ? `${value.padEnd(valueWidth)}  ${source}` : value}`.trimEnd()).join('\n') + '\n';
}

/**
 * `--set key=value` flags (repeatable): any config key from the command line. Values are YAML scalars, like env
 * values (`--set decision.stuck_after=4`, `--set task.checks=[npm test]`).
 */
export function parseSetFlags(pairs: string[]): { path: string; raw: string }[] {
  return pairs.map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UserError(`--set expects key=value (like --set decision.stuck_after=4), got "${pair}"`);
    return { path: pair.slice(0, eq).trim(), raw: pair.slice(eq + 1) };
  });
}
