import type { ObraConfig } from '../config/schema.js';
import type { RetryPolicy } from '../core/types.js';

/** The iteration machine's backoff policies from `agent.local` (seconds in the config, milliseconds inside). */
export function retryPolicyFromConfig(local: ObraConfig['agent']['local']): RetryPolicy {
  return {
    maxRetries: local.max_retries,
    initialDelayMs: local.retry_initial_delay * 1000,
    backoff: local.retry_backoff,
    maxDelayMs: local.retry_max_delay * 1000,
    jitter: local.retry_jitter,
    onExhausted: local.on_lock_exhausted,
    rateLimit: {
      maxRetries: local.rate_limit_max_retries,
      initialDelayMs: local.rate_limit_initial_delay * 1000,
      backoff: local.rate_limit_backoff,
      maxDelayMs: local.rate_limit_max_delay * 1000,
      jitter: local.retry_jitter,
    },
    idleRetries: local.idle_retries,
    usageLimit: { marginMs: local.usage_limit_margin * 1000, maxWaitMs: local.max_limit_wait * 1000 },
  };
}
