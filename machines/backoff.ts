import type { RetryPolicy } from '../src/core/types.js';

/**
 * The wait before retry number `attempt` (1-based): initial × backoff^(attempt-1), capped at maxDelay.
 * With the defaults (2.0 s, ×1.5) that is 2.0, 3.0, 4.5, 6.75, 10.125 s.
 *
 * Jitter spreads retries of many tasks apart (AWS's "full" and "equal" jitter); `random` is injected so
 * tests and replay stay deterministic.
 */
export function backoffDelayMs(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const exponential = policy.initialDelayMs * policy.backoff ** Math.max(0, attempt - 1);
  const capped = Math.min(exponential, policy.maxDelayMs);
  switch (policy.jitter) {
    case 'none':
      return capped;
    case 'full':
      return Math.round(random() * capped);
    case 'equal':
      return Math.round(capped / 2 + random() * (capped / 2));
  }
}
