import type { BackoffPolicy, RetryPolicy } from '../src/core/types.js';
import { fnv1a } from './fnv.js';

/**
 * The wait before retry number `attempt` (1-based): initial × backoff^(attempt-1), capped at maxDelay.
 * With the defaults (2.0 s, ×1.5) that is 2.0, 3.0, 4.5, 6.75, 10.125 s.
 *
 * Jitter spreads retries of many tasks apart (AWS's "full" and "equal" jitter); `random` is injected so
 * tests and replay stay deterministic.
 */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
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

/** The policy for a rate-limited or overloaded API; runs saved before it existed use the session policy. */
export function rateLimitPolicyOf(retry: RetryPolicy): BackoffPolicy {
  return retry.rateLimit ?? retry;
}

/**
 * A number in [0, 1) derived from `key` (FNV-1a): the jitter of a wait is a function of the run, the iteration
 * and the call, so tasks started together still spread apart, and a replayed journal computes the same delays.
 */
export function seededUnit(key: string): number {
  return fnv1a(key) / 0x1_0000_0000;
}
