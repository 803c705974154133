import type { AgentKind, ObraConfig } from '../config/schema.js';
import { priceFor } from './usage.js';

/** The agent CLIs that report tokens but no cost: Obra prices their calls from `agent.prices` (an estimate). */
const TOKENS_ONLY: ReadonlySet<AgentKind> = new Set(['codex', 'gemini', 'qwen']);

/**
 * Why `budget.max_cost_usd` could not hold for a task of this agent kind, or null: a CLI that reports no cost
 * needs a price, else its calls cost nothing as far as the budget can tell.
 */
export function costBudgetProblem(config: ObraConfig, kind: AgentKind): string | null {
  if (config.budget.max_cost_usd === null || !TOKENS_ONLY.has(kind)) return null;
  const section = config.agent[kind as 'codex' | 'gemini' | 'qwen'];
  if (priceFor(config.agent.prices, section.model, kind)) return null;
  return `budget.max_cost_usd is set, but ${kind} reports tokens and no cost, and agent.prices has no price for it${section.model ? ` (nor for its model ${section.model})` : ''} — add agent.prices.${kind}: { input: <USD per million tokens>, output: <USD per million> }, or the budget could not hold`;
}
