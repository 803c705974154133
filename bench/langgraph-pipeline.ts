import { Annotation, END, START, StateGraph } from '@langchain/langgraph';
import { SqliteSaver } from '@langchain/langgraph-checkpoint-sqlite';
import type { Agent } from '../src/agents/agent.js';
import type { ObraConfig } from '../src/config/schema.js';
import type { AgentCallRecord, DecisionReport, IterationSummary, TaskSpec, ValidationVerdict } from '../src/core/types.js';
import { iterationWork } from '../src/engine/effects.js';

/**
 * The very work Obra's actors do (build the context, prompt, call the agent, validate, score, decide), called
 * directly by name: what the LangGraph.js side of a benchmark runs in its nodes, so both engines do the same work.
 */
export function directSteps(config: ObraConfig, agent: Agent): <T>(name: string, input: unknown) => Promise<T> {
  const work = iterationWork({ config, agent, saveIteration: () => {}, now: Date.now }) as unknown as Record<string, { run: (args: { input: unknown; signal: AbortSignal }) => Promise<unknown> }>;
  return <T>(name: string, input: unknown) => work[name]!.run({ input, signal: new AbortController().signal }) as Promise<T>;
}

const State = Annotation.Root({
  runId: Annotation<string>,
  sessionId: Annotation<string>,
  index: Annotation<number>,
  history: Annotation<IterationSummary[]>,
  feedback: Annotation<string | null>,
  context: Annotation<string>,
  prompt: Annotation<string>,
  attempts: Annotation<number>,
  call: Annotation<AgentCallRecord | null>,
  validation: Annotation<ValidationVerdict | null>,
  quality: Annotation<unknown>,
  confidence: Annotation<unknown>,
  decision: Annotation<DecisionReport | null>,
  decisions: Annotation<string[]>,
});
export type PipelineState = typeof State.State;

/**
 * Obra's iteration as a LangGraph.js StateGraph on a SqliteSaver in `dir`: the eight steps as nodes calling the
 * very components Obra's actors call. `loop`: from `persisting` back to `building` until the decision is done
 * (or the iteration budget is spent); else one iteration per invocation. `mode` says how the agent is called.
 */
export function langgraphPipeline(options: { config: ObraConfig; agent: Agent; task: TaskSpec; dir: string; loop: boolean; mode: (index: number) => 'create' | 'resume' }) {
  const { config, task, dir, loop, mode } = options;
  const step = directSteps(config, options.agent);
  type S = PipelineState;
  const graph = new StateGraph(State)
    .addNode('building', async (s: S) => ({ context: await step<string>('buildContext', { task, index: s.index, history: s.history, feedback: s.feedback }) }))
    .addNode('prompting', async (s: S) => ({ prompt: await step<string>('generatePrompt', { task, index: s.index, context: s.context }) }))
    .addNode('awaitingAgent', async (s: S) => ({
      attempts: s.attempts + 1,
      call: await step<AgentCallRecord>('callAgent', { runId: s.runId, index: s.index, attempt: s.attempts + 1, prompt: s.prompt, sessionId: s.sessionId, mode: mode(s.index), workdir: dir }),
    }))
    .addNode('retryingSessionLock', async () => ({}))
    .addNode('validating', async (s: S) => ({ validation: await step<ValidationVerdict>('validateResponse', { task, call: s.call }) }))
    .addNode('scoring', async (s: S) => {
      const scored = await step<{ quality: unknown; confidence: unknown }>('scoreResponse', { task, index: s.index, call: s.call, validation: s.validation, history: s.history });
      return { quality: scored.quality, confidence: scored.confidence };
    })
    .addNode('deciding', async (s: S) => ({
      decision: await step<DecisionReport>('decide', { task, index: s.index, validation: s.validation, quality: s.quality, confidence: s.confidence, history: s.history }),
    }))
    .addNode('persisting', async (s: S) => {
      const summary = { index: s.index, decision: s.decision!.decision, rule: s.decision!.rule, quality: 0, confidence: 0, answerExcerpt: (s.validation?.answer ?? '').slice(0, 400), feedback: s.decision!.feedback, failingChecks: [], validationCodes: s.validation?.codes ?? [] } as unknown as IterationSummary;
      return { index: s.index + 1, attempts: 0, history: [...s.history, summary].slice(-config.context.history_window), feedback: s.decision!.feedback, decisions: [...(s.decisions ?? []), s.decision!.decision] };
    })
    .addEdge(START, 'building')
    .addEdge('building', 'prompting')
    .addEdge('prompting', 'awaitingAgent')
    .addConditionalEdges('awaitingAgent', (s: S) => (s.call?.outcome.kind === 'sessionBusy' ? 'retryingSessionLock' : 'validating'), ['retryingSessionLock', 'validating'])
    .addEdge('retryingSessionLock', 'awaitingAgent')
    .addEdge('validating', 'scoring')
    .addEdge('scoring', 'deciding')
    .addEdge('deciding', 'persisting')
    // With `loop`, the next iteration until the decision is done (or the iteration budget is spent).
    .addConditionalEdges('persisting', (s: S) => (!loop || s.decision?.decision === 'done' || s.index > config.task.max_iterations ? END : 'building'), ['building', END]);
  const checkpointer = SqliteSaver.fromConnString(`${dir}/checkpoints.db`);
  const app = graph.compile({ checkpointer });
  /** SQLite's settings as the saver has them (read after the first use: it sets its database up then). */
  const pragma = (name: string) => String((checkpointer as unknown as { db: { pragma(p: string, o: object): unknown } }).db.pragma(name, { simple: true }));
  return { app, pragma };
}
