import type { EngineEvent } from '../engine/runner.js';

/**
 * The words shared by the terminal and run.log, so both tell the same story. The backoff warning keeps the
 * seed's shape for a busy session (`Session <id> in use, retrying in 2.0s (attempt 1/5)`); a wait for another
 * Obra task names it (its release ends the wait), a rate limit quotes the API.
 */
export function retryMessage(event: Extract<EngineEvent, { type: 'retry' }>): string {
  const seconds = `${(event.delayMs / 1000).toFixed(1)}s`;
  if (event.kind === 'rateLimited') return `API rate limited or overloaded (${event.reason.slice(0, 100)}), retrying in ${seconds} (attempt ${event.attempt}/${event.maxRetries})`;
  if (event.holder) return `Session ${event.sessionId} in use by ${event.holder}, waiting for its release (at most ${seconds} before checking again)`;
  return `Session ${event.sessionId} in use, retrying in ${seconds} (attempt ${event.attempt}/${event.maxRetries})`;
}

/** `Received response (683 chars) after 3 attempts`, as in the seed. */
export function responseMessage(event: Extract<EngineEvent, { type: 'response' }>): string {
  return `Received response (${event.chars} chars) after ${event.attempts} attempt${event.attempts === 1 ? '' : 's'}`;
}
