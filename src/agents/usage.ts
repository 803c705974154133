import type { AgentResult, TokenUsage } from '../core/types.js';

/** USD per million tokens (`agent.prices` entries). */
export interface Price {
  input: number;
  output: number;
  cached_input?: number;
}

/** The price for a model, else for the agent kind (`agent.prices.codex`), else null. */
export function priceFor(prices: Readonly<Record<string, Price>>, model: string | undefined, kind: string): Price | null {
  return (model !== undefined && Object.hasOwn(prices, model) ? prices[model] : undefined) ?? (Object.hasOwn(prices, kind) ? prices[kind]! : null);
}

/** Tokens with the cost the CLI did not report: estimated from a price, or unknown without one. */
export function withEstimatedCost(tokens: Omit<TokenUsage, 'costUsd' | 'costSource'>, price: Price | null): TokenUsage {
  if (!price) return { ...tokens, costUsd: null, costSource: 'unknown' };
  const uncached = Math.max(0, tokens.inputTokens - tokens.cachedInputTokens);
  const cost = (uncached * price.input + tokens.cachedInputTokens * (price.cached_input ?? price.input) + tokens.outputTokens * price.output) / 1_000_000;
  return { ...tokens, costUsd: cost, costSource: 'estimate' };
}

/**
 * Claude Code's result: `usage.input_tokens` counts only the uncached part, the cache's reads and writes come
 * apart; `total_cost_usd` is the CLI's own figure.
 */
export function claudeTokens(result: AgentResult): TokenUsage | null {
  const usage = result.usage;
  if (!usage) return null;
  const n = (key: string) => (typeof usage[key] === 'number' ? (usage[key] as number) : 0);
  const cached = n('cache_read_input_tokens');
  return {
    inputTokens: n('input_tokens') + n('cache_creation_input_tokens') + cached,
    outputTokens: n('output_tokens'),
    cachedInputTokens: cached,
    costUsd: result.total_cost_usd,
    costSource: 'reported',
  };
}
