import { edgesOf, type GraphEdge, type MachineGraph } from '../graph/machine-graph.js';

/**
 * Draws a flat statechart as SVG, laid out from its definition: the states in a column in the order the
 * machine declares them (for Obra's machines, pipeline order), each step to the next state a short arrow,
 * longer jumps forward as arcs on the right, jumps back and self-transitions on the left, transitions that
 * apply in every state as an arrow from the margin. Arcs grow with the distance they cover, so they nest
 * instead of crossing. Every state and edge carries data attributes the page uses to highlight a step.
 */

const BOX_W = 168;
const BOX_H = 42;
const GAP = 38;
const ROW = BOX_H + GAP;
const FONT = 11;
const LINE = 13;
/** Rough width of a label character at FONT px (layout only; the browser draws the real text). */
const CHAR_W = 6.2;
const TOP = 34;

interface Label {
  x: number;
  y: number;
  anchor: 'start' | 'end';
  lines: string[];
  /** How far the label may move up or down to stay clear of the others (it stays beside its edge). */
  slack: number;
}

interface Placed {
  edge: GraphEdge;
  path: string;
  label: Label;
}

interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface Chart {
  svg: string;
  width: number;
  height: number;
}

export function drawChart(graph: MachineGraph): Chart {
  const order = new Map(graph.states.map((s, i) => [s.key, i]));
  const centerY = (key: string) => TOP + order.get(key)! * ROW + BOX_H / 2;
  const edges = edgesOf(graph);
  const placed: Placed[] = [];
  // Local coordinates: boxes span x = 0..BOX_W; the left side is negative and shifted at the end.
  let minX = 0;
  let maxX = BOX_W;
  const widthOf = (lines: string[]) => Math.max(...lines.map((l) => l.length)) * CHAR_W;

  for (const edge of edges) {
    const lines = edge.labels;
    if (edge.source === null) {
      // Applies in every state: an arrow in from the margin.
      const y = centerY(edge.target);
      const from = -70;
      placed.push({ edge, path: `M ${from} ${y} L -4 ${y}`, label: { x: from - 6, y, anchor: 'end', lines: lines.map((l) => `${l} (any state)`), slack: 0 } });
      minX = Math.min(minX, from - 6 - widthOf(lines) - 70);
      continue;
    }
    const i = order.get(edge.source)!;
    const j = order.get(edge.target)!;
    const y1 = centerY(edge.source);
    const y2 = centerY(edge.target);
    if (i === j) {
      const top = y1 - BOX_H / 2;
      const path = `M 0 ${top + 9} C -46 ${top - 10}, -46 ${top + BOX_H + 10}, -4 ${top + BOX_H - 9}`;
      const x = -40;
      placed.push({ edge, path, label: { x, y: y1, anchor: 'end', lines, slack: BOX_H / 2 } });
      minX = Math.min(minX, x - widthOf(lines));
    } else if (j === i + 1) {
      const x = BOX_W / 2;
      const path = `M ${x} ${y1 + BOX_H / 2} L ${x} ${y2 - BOX_H / 2 - 4}`;
      placed.push({ edge, path, label: { x: x + 7, y: (y1 + y2) / 2, anchor: 'start', lines, slack: GAP / 2 } });
      maxX = Math.max(maxX, x + 7 + widthOf(lines));
    } else if (j > i) {
      const span = j - i;
      const d = 26 + 22 * (span - 1);
      const path = `M ${BOX_W} ${y1} C ${BOX_W + d} ${y1}, ${BOX_W + d} ${y2}, ${BOX_W + 4} ${y2}`;
      const x = BOX_W + d * 0.75 + 5;
      placed.push({ edge, path, label: { x, y: (y1 + y2) / 2, anchor: 'start', lines, slack: (span * ROW) / 2 - BOX_H / 2 } });
      maxX = Math.max(maxX, x + widthOf(lines));
    } else {
      const span = i - j;
      const d = 60 + 24 * (span - 1);
      const path = `M 0 ${y1} C ${-d} ${y1}, ${-d} ${y2}, -4 ${y2}`;
      const x = -d * 0.75 - 5;
      placed.push({ edge, path, label: { x, y: (y1 + y2) / 2, anchor: 'end', lines, slack: (span * ROW) / 2 - BOX_H / 2 } });
      minX = Math.min(minX, x - widthOf(lines));
    }
  }
  separateLabels(placed.map((p) => p.label), graph.states.map((_, i) => ({ x0: 0, y0: TOP + i * ROW, x1: BOX_W, y1: TOP + i * ROW + BOX_H })));

  const margin = 12;
  const shift = -minX + margin;
  const width = Math.ceil(maxX + shift + margin);
  const height = TOP + graph.states.length * ROW - GAP + 16;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-machine="${graph.id}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${graph.id} statechart">`);
  parts.push(`<defs><marker id="arrow-${graph.id}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>`);
  parts.push(`<g transform="translate(${shift} 0)">`);
  // The initial state's marker.
  const initialY = TOP + order.get(graph.initial)! * ROW;
  parts.push(`<circle class="initial" cx="${BOX_W / 2}" cy="${initialY - 24}" r="5"/><path class="edge-line" d="M ${BOX_W / 2} ${initialY - 19} L ${BOX_W / 2} ${initialY - 4}" marker-end="url(#arrow-${graph.id})"/>`);
  for (const p of placed) {
    const kinds = p.edge.kinds.join(' ');
    const from = p.edge.source ?? '*';
    parts.push(`<g class="edge${p.edge.kinds.every((k) => k === 'error') ? ' error' : ''}" data-from="${esc(from)}" data-to="${esc(p.edge.target)}" data-kinds="${esc(kinds)}">`);
    parts.push(`<path class="edge-line" d="${p.path}" marker-end="url(#arrow-${graph.id})"/>`);
    parts.push(textBlock(p.label.x, p.label.y, p.label.anchor, p.label.lines, 'edge-label'));
    parts.push('</g>');
  }
  // A state left only by eventless transitions is never where a snapshot rests: a step passes through it.
  const transient = new Set(graph.states.filter((s) => {
    const own = graph.transitions.filter((t) => t.source === s.key);
    return own.length > 0 && own.every((t) => t.kind === 'always');
  }).map((s) => s.key));
  for (const state of graph.states) {
    const y = TOP + order.get(state.key)! * ROW;
    const invoked = state.invokes.map((i) => i.src).join(', ');
    parts.push(`<g class="node${state.type === 'final' ? ' final' : ''}${transient.has(state.key) ? ' transient' : ''}" data-machine="${graph.id}" data-state="${esc(state.key)}">`);
    parts.push(`<rect x="0" y="${y}" width="${BOX_W}" height="${BOX_H}" rx="8"/>`);
    if (state.type === 'final') parts.push(`<rect class="inner" x="3" y="${y + 3}" width="${BOX_W - 6}" height="${BOX_H - 6}" rx="6"/>`);
    const nameY = invoked ? y + 17 : y + BOX_H / 2 + 4;
    parts.push(`<text class="state-name" x="${BOX_W / 2}" y="${nameY}" text-anchor="middle">${esc(state.key)}</text>`);
    if (invoked) parts.push(`<text class="state-invoke" x="${BOX_W / 2}" y="${y + 32}" text-anchor="middle">invoke ${esc(invoked)}</text>`);
    parts.push('</g>');
  }
  parts.push('</g></svg>');
  return { svg: parts.join('\n'), width, height };
}

/**
 * Moves labels up or down (within their slack) until none overlaps another label or a state box: a greedy
 * pass in drawing order, trying the nearest free offsets first.
 */
function separateLabels(labels: Label[], boxes: Rect[]): void {
  const taken: Rect[] = [...boxes];
  const rectOf = (label: Label, dy: number): Rect => {
    const width = Math.max(...label.lines.map((l) => l.length)) * CHAR_W;
    const height = label.lines.length * LINE;
    const x0 = label.anchor === 'start' ? label.x : label.x - width;
    const y0 = label.y + dy - height / 2;
    return { x0, y0, x1: x0 + width, y1: y0 + height };
  };
  const overlaps = (a: Rect) => taken.some((b) => a.x0 < b.x1 + 2 && b.x0 < a.x1 + 2 && a.y0 < b.y1 + 1 && b.y0 < a.y1 + 1);
  for (const label of labels) {
    let chosen = 0;
    for (let step = 0; step <= 40; step++) {
      const dy = (step % 2 === 1 ? 1 : -1) * Math.ceil(step / 2) * 4;
      if (Math.abs(dy) > label.slack) continue;
      if (!overlaps(rectOf(label, dy))) {
        chosen = dy;
        break;
      }
    }
    label.y += chosen;
    taken.push(rectOf(label, 0));
  }
}

function textBlock(x: number, y: number, anchor: 'start' | 'end', lines: string[], cls: string): string {
  const top = y - ((lines.length - 1) * LINE) / 2 + FONT / 2 - 1;
  const spans = lines.map((line, k) => `<tspan x="${x}" y="${(top + k * LINE).toFixed(1)}">${esc(line)}</tspan>`).join('');
  return `<text class="${cls}" text-anchor="${anchor}">${spans}</text>`;
}

export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
