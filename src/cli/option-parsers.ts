import { notADuration, parseDuration } from '../config/duration.js';
import { ENGINES } from '../config/engines.js';
import { AGENT_KINDS } from '../core/agent-kinds.js';
import { UserError } from '../core/errors.js';

/**
 * Parsers of option values, each bound to its flag so that a bad value names it, in one format:
 * `--concurrency: "abc" is not a whole number of at least 1` (printed as `obra: ...`, exit 2).
 */

type Parse<T> = (value: string) => T;

const refuse = (flag: string, value: string, expected: string) => new UserError(`${flag}: ${JSON.stringify(value)} is not ${expected}`);

/** A whole number (`--priority -2`), at least `min` when given (`--concurrency 4`). */
export function wholeNumberOption(flag: string, min?: number): Parse<number> {
  return (value) => {
    const n = value.trim() === '' ? NaN : Number(value);
    if (!Number.isInteger(n) || (min !== undefined && n < min)) throw refuse(flag, value, `a whole number${min === undefined ? '' : ` of at least ${min}`}`);
    return n;
  };
}

/** A number above 0 (`--speed 2.5`); `hint` says what it means. */
export function positiveNumberOption(flag: string, hint: string): Parse<number> {
  return (value) => {
    const n = value.trim() === '' ? NaN : Number(value);
    if (!Number.isFinite(n) || n <= 0) throw refuse(flag, value, `a number above 0 (${hint})`);
    return n;
  };
}

/** A TCP port; 0 asks the system for a free one. */
export function portOption(flag: string): Parse<number> {
  return (value) => {
    const n = value.trim() === '' ? NaN : Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw refuse(flag, value, 'a port number from 0 to 65535 (0 picks a free one)');
    return n;
  };
}

/**
 * A duration above 0 in the config's forms (`90`, `90s`, `15m`, `8h`, `2d`), returned in the flag's own unit:
 * seconds like the config, or whole milliseconds for a flag that always took them (a bare number is in that unit).
 */
export function durationOption(flag: string, unit: 's' | 'ms' = 's'): Parse<number> {
  return (value) => {
    const seconds = parseDuration(value, unit === 's' ? 1 : 0.001);
    if (seconds === null) throw new UserError(`${flag}: ${notADuration(value)}`);
    const inUnit = unit === 's' ? seconds : Math.round(seconds * 1000);
    if (inUnit <= 0) throw refuse(flag, value, 'a duration above 0');
    return inUnit;
  };
}

/** One of `choices` (commander's own `.choices()` message does not follow this format). */
export function choiceOption(flag: string, choices: readonly string[]): Parse<string> {
  return (value) => {
    if (!choices.includes(value)) throw refuse(flag, value, `one of ${choices.join(', ')}`);
    return value;
  };
}

/** `--engine local|restate`. */
export const engineOption = choiceOption('--engine', ENGINES);
export const agentOption = choiceOption('--agent', AGENT_KINDS);

/** `--agents claude,codex,gemini`: a race, one attempt per agent (an agent may come twice). */
export const agentsOption: Parse<string[]> = (value) => {
  const kinds = value.split(',').map((kind) => kind.trim());
  const bad = kinds.find((kind) => !(AGENT_KINDS as readonly string[]).includes(kind));
  if (bad !== undefined) throw refuse('--agents', value, `a comma-separated list of ${AGENT_KINDS.join(', ')} (${JSON.stringify(bad)} is none of them)`);
  return kinds;
};
