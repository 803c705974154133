import { esc } from './chart.js';

/**
 * The board's spend: what the store's tasks cost, per task (the dearest), per agent and per day (the day a task
 * was submitted), drawn as three bar charts in one SVG, in the statecharts' look (./chart.ts). Computed from the
 * board's index (no file is read), so a change pushed to the board carries it when it moved.
 */

export interface Spend {
  totalUsd: number;
  perTask: { runId: string; task: string; usd: number }[];
  perAgent: { agent: string; usd: number; tasks: number }[];
  perDay: { day: string; usd: number; tasks: number }[];
}

const TOP_TASKS = 8;
const DAYS = 14;

export function spendOf(tasks: { runId: string; task: string; agent: string; costUsd: number; createdAt: string }[]): Spend {
  const agents = new Map<string, { usd: number; tasks: number }>();
  const days = new Map<string, { usd: number; tasks: number }>();
  let totalUsd = 0;
  for (const t of tasks) {
    totalUsd += t.costUsd;
    const a = agents.get(t.agent) ?? { usd: 0, tasks: 0 };
    agents.set(t.agent, { usd: a.usd + t.costUsd, tasks: a.tasks + 1 });
    const day = t.createdAt.slice(0, 10) || 'unknown';
    const d = days.get(day) ?? { usd: 0, tasks: 0 };
    days.set(day, { usd: d.usd + t.costUsd, tasks: d.tasks + 1 });
  }
  const perTask = tasks
    .filter((t) => t.costUsd > 0)
    .sort((a, b) => b.costUsd - a.costUsd || (a.runId < b.runId ? -1 : 1))
    .slice(0, TOP_TASKS)
    .map((t) => ({ runId: t.runId, task: t.task, usd: t.costUsd }));
  return {
    totalUsd,
    perTask,
    perAgent: [...agents].map(([agent, v]) => ({ agent, ...v })).sort((a, b) => b.usd - a.usd || (a.agent < b.agent ? -1 : 1)),
    perDay: [...days].map(([day, v]) => ({ day, ...v })).sort((a, b) => (a.day < b.day ? -1 : 1)).slice(-DAYS),
  };
}

const LABEL_W = 170;
const BAR_W = 190;
const ROW = 18;
const PANEL_GAP = 26;

/** The three charts side by side: each bar's length is its share of its chart's largest. */
export function spendSvg(spend: Spend): string {
  const panels = [
    { id: 'task', title: 'Dearest tasks', rows: spend.perTask.map((t) => ({ key: t.runId, label: short(t.task, 26), title: `${t.runId}: ${t.task}`, usd: t.usd, note: '' })) },
    { id: 'agent', title: 'Per agent', rows: spend.perAgent.map((a) => ({ key: a.agent, label: a.agent, title: `${a.agent}: ${a.tasks} task(s)`, usd: a.usd, note: `${a.tasks}` })) },
    { id: 'day', title: 'Per day', rows: spend.perDay.map((d) => ({ key: d.day, label: d.day, title: `${d.day}: ${d.tasks} task(s)`, usd: d.usd, note: `${d.tasks}` })) },
  ];
  const panelW = LABEL_W + BAR_W + 70;
  const height = 30 + Math.max(1, ...panels.map((p) => p.rows.length)) * ROW + 6;
  const width = panels.length * panelW + (panels.length - 1) * PANEL_GAP;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" class="spend-chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="spend: total $${spend.totalUsd.toFixed(4)}">`];
  panels.forEach((panel, i) => {
    const x0 = i * (panelW + PANEL_GAP);
    const max = Math.max(...panel.rows.map((r) => r.usd), 0);
    parts.push(`<g class="spend-panel" data-spend="${panel.id}" transform="translate(${x0} 0)">`);
    parts.push(`<text class="spend-title" x="0" y="14">${esc(panel.title)}</text>`);
    if (!panel.rows.length) parts.push(`<text class="spend-none" x="0" y="${30 + ROW / 2}">nothing spent yet</text>`);
    panel.rows.forEach((row, k) => {
      const y = 26 + k * ROW;
      const w = max > 0 ? Math.max(1, Math.round((row.usd / max) * BAR_W)) : 1;
      parts.push(`<g class="spend-row" data-key="${esc(row.key)}" data-usd="${row.usd.toFixed(6)}"><title>${esc(row.title)}</title>`);
      parts.push(`<text class="spend-label" x="${LABEL_W - 6}" y="${y + 12}" text-anchor="end">${esc(row.label)}</text>`);
      parts.push(`<rect class="spend-bar" x="${LABEL_W}" y="${y + 3}" width="${w}" height="${ROW - 6}" rx="3"/>`);
      parts.push(`<text class="spend-value" x="${LABEL_W + w + 5}" y="${y + 12}">$${row.usd.toFixed(4)}</text></g>`);
    });
    parts.push('</g>');
  });
  parts.push('</svg>');
  return parts.join('');
}

const short = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
