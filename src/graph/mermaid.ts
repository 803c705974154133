import { edgesOf, type MachineGraph } from './machine-graph.js';
import { machineGraphs, MACHINE_NAMES, type MachineName } from './machine-export.js';

/**
 * Mermaid `stateDiagram-v2` text for a machine, generated from its definition: one arrow per pair of states,
 * labelled with its transitions in the order XState tries them (`a / b`). The README's charts are this text
 * (`npm run docs:machines` rewrites them; a test fails when they drift).
 */
export function mermaidOf(graph: MachineGraph): string {
  const lines = ['stateDiagram-v2', `  [*] --> ${graph.initial}`];
  const edges = edgesOf(graph);
  for (const edge of edges) {
    if (edge.source === null) continue;
    lines.push(`  ${edge.source} --> ${edge.target} : ${edge.labels.join(' / ')}`);
  }
  for (const state of graph.states) if (state.type === 'final') lines.push(`  ${state.key} --> [*]`);
  // Mermaid has no "from any state" arrow: a machine-level transition becomes a note on its target.
  for (const edge of edges) {
    if (edge.source === null) lines.push(`  note left of ${edge.target} : ${edge.labels.join(' / ')} from any state`);
  }
  return lines.join('\n');
}

export function mermaidCharts(): Record<MachineName, string> {
  const graphs = machineGraphs();
  return { iteration: mermaidOf(graphs.iteration), task: mermaidOf(graphs.task) };
}

const markers = (name: string) => ({ start: `<!-- mermaid:${name}:start -->`, end: `<!-- mermaid:${name}:end -->` });

/** The chart text between a README's `<!-- mermaid:<name>:start -->` / `end` markers, without the fence. */
export function readmeChart(readme: string, name: string): string | null {
  const { start, end } = markers(name);
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) return null;
  const block = readme.slice(from + start.length, to).trim();
  const fenced = /^```mermaid\n([\s\S]*?)\n```$/.exec(block);
  return fenced ? fenced[1]! : block;
}

/** The README with every machine's chart block replaced by the generated one. */
export function updateReadmeCharts(readme: string, charts: Record<string, string> = mermaidCharts()): string {
  let text = readme;
  for (const name of MACHINE_NAMES) {
    const { start, end } = markers(name);
    const from = text.indexOf(start);
    const to = text.indexOf(end);
    if (from < 0 || to < from) throw new Error(`README has no ${start} … ${end} block`);
    text = `${text.slice(0, from + start.length)}\n\`\`\`mermaid\n${charts[name]}\n\`\`\`\n${text.slice(to)}`;
  }
  return text;
}
