import type { IterationRecord } from './types.js';

/**
 * Tokens and cost summed over a task's iterations (or over every task of one agent): the same fields for every
 * agent CLI. `costUsd` is the iterations' cost, as the budget counts it; `estimated` says some of it was
 * computed from `agent.prices` because the CLI reported none, and `unpricedCalls` counts the calls whose cost is
 * unknown (tokens but no price): their cost is missing from the sum.
 */
export interface UsageTotals {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  costUsd: number;
  estimated: boolean;
  unpricedCalls: number;
}

export const noUsage = (): UsageTotals => ({ calls: 0, inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, costUsd: 0, estimated: false, unpricedCalls: 0 });

/** The sums of iteration records (an iteration's agent call: its tokens, and the iteration's cost). */
export function usageOfRecords(records: readonly Pick<IterationRecord, 'agent' | 'costUsd'>[]): UsageTotals {
  const sum = noUsage();
  for (const record of records) {
    sum.costUsd += record.costUsd;
    if (!record.agent) continue;
    sum.calls += 1;
    const tokens = record.agent.tokens;
    if (!tokens) continue;
    sum.inputTokens += tokens.inputTokens;
    sum.outputTokens += tokens.outputTokens;
    sum.cachedInputTokens += tokens.cachedInputTokens;
    if (tokens.costSource === 'estimate') sum.estimated = true;
    if (tokens.costSource === 'unknown') sum.unpricedCalls += 1;
  }
  return sum;
}

export function addUsage(a: UsageTotals, b: UsageTotals): UsageTotals {
  return {
    calls: a.calls + b.calls,
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    cachedInputTokens: a.cachedInputTokens + b.cachedInputTokens,
    costUsd: a.costUsd + b.costUsd,
    estimated: a.estimated || b.estimated,
    unpricedCalls: a.unpricedCalls + b.unpricedCalls,
  };
}

/** Sums per agent kind, in the order the agents first appear. */
export function usageByAgent(items: readonly { agent: string | null; usage: UsageTotals | null }[]): { agent: string; tasks: number; usage: UsageTotals }[] {
  const byAgent = new Map<string, { agent: string; tasks: number; usage: UsageTotals }>();
  for (const item of items) {
    if (!item.usage) continue;
    const agent = item.agent ?? '?';
    const known = byAgent.get(agent) ?? { agent, tasks: 0, usage: noUsage() };
    byAgent.set(agent, { agent, tasks: known.tasks + 1, usage: addUsage(known.usage, item.usage) });
  }
  return [...byAgent.values()];
}

/** `$0.0123` — with `~` in front when some of it is an estimate, `+?` after when some calls had no price. */
export function costText(usage: Pick<UsageTotals, 'costUsd' | 'estimated' | 'unpricedCalls'>): string {
  return `${usage.estimated ? '~' : ''}$${usage.costUsd.toFixed(4)}${usage.unpricedCalls ? '+?' : ''}`;
}

/** `12.3k in (4.0k cached) / 1.2k out`. */
export function tokensText(usage: Pick<UsageTotals, 'inputTokens' | 'outputTokens' | 'cachedInputTokens'>): string {
  return `${count(usage.inputTokens)} in (${count(usage.cachedInputTokens)} cached) / ${count(usage.outputTokens)} out`;
}

function count(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1_000_000).toFixed(2)}M`;
}
