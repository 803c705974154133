/**
 * One grammar for every length of time Obra reads, in the config (`agent.local.timeout: 15m`) and in flags
 * (`--park-after 2h`): a bare number in the key's own unit (seconds for every config key), or a number with
 * `s`, `m`, `h` or `d`.
 */

/** What the user may write, for error messages. */
export const DURATION_FORMS = '90, 90s, 15m, 8h or 2d';

const SECONDS_PER_UNIT = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
const DURATION_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*([smhd])?\s*$/;

/**
 * The seconds `value` stands for, or null when it is not a duration. `bareUnitSeconds` is what a number
 * without a unit counts in (1: seconds; 0.001: milliseconds, for a flag that always took milliseconds).
 */
export function parseDuration(value: string | number, bareUnitSeconds = 1): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value * bareUnitSeconds : null;
  const match = DURATION_PATTERN.exec(value);
  if (!match) return null;
  const unit = match[2] as keyof typeof SECONDS_PER_UNIT | undefined;
  return Number(match[1]) * (unit ? SECONDS_PER_UNIT[unit] : bareUnitSeconds);
}

/** `"15x" is not a duration — use 90, 90s, 15m, 8h or 2d`. */
export const notADuration = (value: unknown): string => `${JSON.stringify(value)} is not a duration — use ${DURATION_FORMS}`;
