import { UserError } from '../core/errors.js';

/** `--until`: `<iteration>.<state>` (`3.scoring`) or `task.<state>` (`task.awaitingHuman`). */
const UNTIL_PATTERN = /^(\d+|task)\.([A-Za-z]+)$/;

export function parseUntil(until: string): string {
  if (!UNTIL_PATTERN.test(until)) {
    throw new UserError(`--until: ${JSON.stringify(until)} is not <iteration>.<state> (e.g. 3.scoring, 1.awaitingAgent) or task.<state> (e.g. task.awaitingHuman)`);
  }
  return until;
}

