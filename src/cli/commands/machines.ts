import type { Command } from 'commander';
import { UserError } from '../../core/errors.js';
import type { MachineName } from '../../graph/machine-export.js';

/** The machines by name (the graph modules, which build them, load only when a command prints them). */
const MACHINE_NAMES: MachineName[] = ['iteration', 'task'];

/** `obra machines`: the statecharts as Stately Studio configs, Studio import code, or mermaid. */
export function register(program: Command): void {
  program
    .command('machines')
    .description('print the statecharts: --json (for Stately Studio), --studio (import code), --mermaid (docs)')
    .argument('[machine]', `one of ${MACHINE_NAMES.join(', ')} (default: all)`)
    .option('--json', 'the createMachine configs as JSON: { "iteration": {...}, "task": {...} }')
    .option('--studio', 'createMachine(...) code to paste into Stately Studio ("Import from code")')
    .option('--mermaid', 'mermaid stateDiagram-v2 charts (what docs/statecharts.md shows)')
    .action(async (name: string | undefined, flags: { json?: boolean; studio?: boolean; mermaid?: boolean }) => {
      const names = pick(name);
      const formats = [flags.json, flags.studio, flags.mermaid].filter(Boolean).length;
      if (formats > 1) throw new UserError('choose one of --json, --studio, --mermaid');
      process.stdout.write(await render(names, flags));
    });
}

function pick(name: string | undefined): MachineName[] {
  if (name === undefined) return MACHINE_NAMES;
  if (!(MACHINE_NAMES as string[]).includes(name)) throw new UserError(`unknown machine "${name}" — choose ${MACHINE_NAMES.join(' or ')}`);
  return [name as MachineName];
}

async function render(names: MachineName[], flags: { json?: boolean; studio?: boolean; mermaid?: boolean }): Promise<string> {
  const [{ edgesOf }, { machineConfigs, machineGraphs, studioCode }, { mermaidCharts }] = await Promise.all([
    import('../../graph/machine-graph.js'),
    import('../../graph/machine-export.js'),
    import('../../graph/mermaid.js'),
  ]);
  if (flags.json) {
    const configs = machineConfigs();
    const value = names.length === 1 ? configs[names[0]!] : Object.fromEntries(names.map((n) => [n, configs[n]]));
    return `${JSON.stringify(value, null, 2)}\n`;
  }
  if (flags.studio) return studioCode(names);
  if (flags.mermaid) {
    const charts = mermaidCharts();
    // Several charts: each starts with a mermaid comment naming it.
    return names.length === 1 ? `${charts[names[0]!]}\n` : names.map((n) => `%% ${n} machine\n${charts[n]}\n`).join('\n');
  }
  const graphs = machineGraphs();
  const lines: string[] = [];
  for (const n of names) {
    const graph = graphs[n];
    const finals = graph.states.filter((s) => s.type === 'final').map((s) => s.key);
    lines.push(`${graph.id}: ${graph.states.length} states, ${graph.transitions.length} transitions (${edgesOf(graph).length} arrows), initial ${graph.initial}`);
    lines.push(`  states: ${graph.states.map((s) => s.key).join(', ')}`);
    lines.push(`  final:  ${finals.join(', ')}`);
  }
  lines.push('', 'Print them with --json (Stately Studio), --studio (import code) or --mermaid.');
  return `${lines.join('\n')}\n`;
}
