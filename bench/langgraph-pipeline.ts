import type { Agent } from '../src/agents/agent.js';
import type { ObraConfig } from '../src/config/schema.js';
import { iterationWork } from '../src/engine/effects.js';

/**
 * The very work Obra's actors do (build the context, prompt, call the agent, validate, score, decide), called
 * directly by name: what the LangGraph.js side of a benchmark runs in its nodes, so both engines do the same work.
 */
export function directSteps(config: ObraConfig, agent: Agent): <T>(name: string, input: unknown) => Promise<T> {
  const work = iterationWork({ config, agent, saveIteration: () => {}, now: Date.now }) as unknown as Record<string, { run: (args: { input: unknown; signal: AbortSignal }) => Promise<unknown> }>;
  return <T>(name: string, input: unknown) => work[name]!.run({ input, signal: new AbortController().signal }) as Promise<T>;
}
