import type { UsageStatus } from '../core/types.js';

/**
 * The stream-json lines of `claude -p --output-format stream-json --verbose` that Obra acts on while a call
 * runs (measured on Claude Code 2.1.197; real samples in fixtures/claude-cli/limits/):
 * - `assistant` messages: the agent's text and tool uses (progress);
 * - `{"type":"system","subtype":"api_retry","attempt":3,"max_retries":10,"retry_delay_ms":2067,"error_status":529,"error":"overloaded"}`:
 *   the CLI retrying the API by itself;
 * - `{"type":"rate_limit_event","rate_limit_info":{"status":"rejected"|"allowed"|"allowed_warning","resetsAt":<epoch s>,
 *   "rateLimitType":"five_hour","utilization":0.92,"overageStatus":...,"overageDisabledReason":...}}`: the
 *   subscriber's usage limit (printed for claude.ai logins only);
 * - `stream_event` lines (only with `--include-partial-messages`), whose `ping` keep-alives arrive every ~10 s
 *   even while the API is stalled: they are not progress.
 */
export type StreamEvent =
  | { kind: 'text'; text: string }
  | { kind: 'tool'; name: string; input: unknown }
  | { kind: 'apiRetry'; attempt: number; maxRetries: number; delayMs: number; errorStatus: number | null; error: string }
  | { kind: 'usage'; info: UsageInfo }
  | { kind: 'keepAlive' }
  | { kind: 'other' };

/** A `rate_limit_event`'s `rate_limit_info`, times in epoch milliseconds. */
export interface UsageInfo extends UsageStatus {
  overageStatus: string | null;
  overageDisabledReason: string | null;
}

/** The events of one stream-json line (an assistant message may hold several blocks); [] for a line that is not JSON. */
export function streamEventsOf(line: string): StreamEvent[] {
  if (!line.startsWith('{')) return [];
  let event: Record<string, unknown>;
  try {
    event = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return [];
  }
  switch (event.type) {
    case 'assistant': {
      const content = (event.message as { content?: Array<{ type: string; text?: string; name?: string; input?: unknown }> } | undefined)?.content ?? [];
      return content.flatMap((block): StreamEvent[] =>
        block.type === 'text' && block.text ? [{ kind: 'text', text: block.text }]
        : block.type === 'tool_use' && block.name ? [{ kind: 'tool', name: block.name, input: block.input }]
        : [],
      );
    }
    case 'system':
      if (event.subtype !== 'api_retry') return [{ kind: 'other' }];
      return [
        {
          kind: 'apiRetry',
          attempt: numberOr(event.attempt, 0),
          maxRetries: numberOr(event.max_retries, 0),
          delayMs: numberOr(event.retry_delay_ms, 0),
          errorStatus: typeof event.error_status === 'number' ? event.error_status : null,
          error: typeof event.error === 'string' ? event.error : 'unknown',
        },
      ];
    case 'rate_limit_event': {
      const info = (event.rate_limit_info ?? {}) as Record<string, unknown>;
      return [
        {
          kind: 'usage',
          info: {
            status: typeof info.status === 'string' ? info.status : 'unknown',
            limitType: typeof info.rateLimitType === 'string' ? info.rateLimitType : null,
            resetsAt: typeof info.resetsAt === 'number' ? info.resetsAt * 1000 : null,
            utilization: typeof info.utilization === 'number' ? info.utilization : null,
            overageStatus: typeof info.overageStatus === 'string' ? info.overageStatus : null,
            overageDisabledReason: typeof info.overageDisabledReason === 'string' ? info.overageDisabledReason : null,
          },
        },
      ];
    }
    case 'stream_event': {
      const inner = event.event as { type?: string } | undefined;
      return [inner?.type === 'ping' ? { kind: 'keepAlive' } : { kind: 'other' }];
    }
    default:
      return [{ kind: 'other' }];
  }
}

/** The last usage-limit report among a call's stream-json lines, or null. */
export function lastUsageInfo(stdout: string): UsageInfo | null {
  let found: UsageInfo | null = null;
  for (const line of stdout.split('\n')) {
    if (!line.includes('"rate_limit_event"')) continue;
    for (const event of streamEventsOf(line.trim())) if (event.kind === 'usage') found = event.info;
  }
  return found;
}

/** How many `api_retry` lines a call printed. */
export function countApiRetries(stdout: string): number {
  let n = 0;
  for (const line of stdout.split('\n')) if (line.includes('"api_retry"') && streamEventsOf(line.trim()).some((e) => e.kind === 'apiRetry')) n++;
  return n;
}

const numberOr = (value: unknown, fallback: number) => (typeof value === 'number' && Number.isFinite(value) ? value : fallback);
