/**
 * bench/agents — what each agent CLI costs the machine (issue 21, "Benchmarks"):
 *
 * 1. Turning its event stream into records: the agent's own code in src/ over a real sample stream scaled up to a
 *    few MB — each line as it arrives (the progress reader), then the whole stream (the turn reader) and the
 *    classifier — in ms per MB of events, the median of ROUNDS runs, beside Claude Code's (the ratio column).
 *    The sample's first and last lines stay once (Claude's and Qwen's `result` must end the stream); the lines
 *    between are repeated up to MB megabytes.
 * 2. The real CLI's start-up: `<cli> --version`, the median of 5 runs, wall time with the CPU time (user + system,
 *    children included) beside it, for each CLI installed in .cache/ (scripts/install-agent-clis.mjs,
 *    scripts/install-real-claude.mjs); "not installed" otherwise.
 *
 *   npm run bench:agents        (ROUNDS=15, MB=4, STARTS=5 by default)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { classify, type RawCall } from '../../src/agents/classify.js';
import { parseClaudeOutput } from '../../src/agents/claude-result.js';
import { classifyCodex } from '../../src/agents/codex/codex-classify.js';
import { codexProgressOf, readCodexTurn } from '../../src/agents/codex/codex-stream.js';
import { classifyGemini } from '../../src/agents/gemini/gemini-classify.js';
import { geminiProgressOf, readGeminiTurn } from '../../src/agents/gemini/gemini-stream.js';
import { classifyOpencode } from '../../src/agents/opencode/opencode-classify.js';
import { opencodeProgressOf, readOpencodeTurn } from '../../src/agents/opencode/opencode-stream.js';
import { classifyQwen } from '../../src/agents/qwen/qwen-classify.js';
import { streamEventsOf } from '../../src/agents/stream-events.js';
// @ts-expect-error -- plain .mjs scripts (no type declarations).
import { AGENT_CLIS, findAgentCli } from '../../scripts/install-agent-clis.mjs';
// @ts-expect-error -- plain .mjs scripts (no type declarations).
import { findRealClaude, PINNED_CLAUDE_VERSION } from '../../scripts/install-real-claude.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const ROUNDS = Number(process.env.ROUNDS ?? 15);
const MB = Number(process.env.MB ?? 4);
const STARTS = Number(process.env.STARTS ?? 5);

type Kind = 'claude' | 'codex' | 'gemini' | 'qwen' | 'opencode';

interface Parser {
  kind: Kind;
  sample: string;
  /** Everything the agent does with a finished call's stdout: each line's progress, then the turn and its outcome. */
  parse(stdout: string): unknown;
}

const raw = (stdout: string): RawCall => ({ stdout, stderr: '', exitCode: 0, signal: null, stoppedBy: null, timeoutMs: 900_000, spawnError: null, overflow: false });
const eachLine = (stdout: string, progress: (line: string) => unknown) => {
  let n = 0;
  for (const line of stdout.split('\n')) if (progress(line.trim())) n++;
  return n;
};

const PARSERS: Parser[] = [
  {
    kind: 'claude',
    sample: 'fixtures/claude-cli/limits/s4-warn-oauth-stream.timed.jsonl',
    parse: (stdout) => [eachLine(stdout, streamEventsOf), classify(raw(stdout))],
  },
  {
    kind: 'codex',
    sample: 'fixtures/agent-clis/codex/write-workspace-write.jsonl',
    parse: (stdout) => [eachLine(stdout, codexProgressOf), classifyCodex(raw(stdout), readCodexTurn(stdout), Date.now())],
  },
  {
    kind: 'gemini',
    sample: 'fixtures/agent-clis/gemini/write-auto-edit.jsonl',
    parse: (stdout) => [eachLine(stdout, geminiProgressOf), classifyGemini(raw(stdout), readGeminiTurn(stdout))],
  },
  {
    kind: 'qwen',
    sample: 'fixtures/agent-clis/qwen/write-auto-edit.jsonl',
    parse: (stdout) => [eachLine(stdout, streamEventsOf), classifyQwen(raw(stdout), parseClaudeOutput(stdout).result)],
  },
  {
    kind: 'opencode',
    sample: 'fixtures/agent-clis/opencode/write-default-config.jsonl',
    parse: (stdout) => [eachLine(stdout, opencodeProgressOf), classifyOpencode(raw(stdout), readOpencodeTurn(stdout), Date.now())],
  },
];

/** The sample's lines (Claude's timed samples carry seconds since spawn before each line). */
function sampleLines(path: string): string[] {
  return readFileSync(join(ROOT, path), 'utf8').split('\n').map((l) => l.replace(/^\s*[\d.]+ (?=\{)/, '').trim()).filter(Boolean);
}

/** The first and the last line once, the lines between repeated until the stream holds `mb` megabytes. */
function scaled(lines: string[], mb: number): string {
  const [first, ...rest] = lines;
  const last = rest.pop()!;
  const middle = rest.length ? rest : [first!];
  const target = mb * 1024 * 1024;
  const out = [first!];
  let size = first!.length + last.length + 2;
  for (let i = 0; size < target; i++) {
    const line = middle[i % middle.length]!;
    out.push(line);
    size += line.length + 1;
  }
  out.push(last);
  return `${out.join('\n')}\n`;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function parseCost(parser: Parser): { mb: number; lines: number; msPerMb: number } {
  const stdout = scaled(sampleLines(parser.sample), MB);
  const mb = Buffer.byteLength(stdout) / (1024 * 1024);
  // Two unmeasured runs (the JIT), then the rounds.
  parser.parse(stdout);
  parser.parse(stdout);
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now();
    parser.parse(stdout);
    times.push(performance.now() - started);
  }
  return { mb, lines: stdout.split('\n').length - 1, msPerMb: median(times) / mb };
}

/** The installed real CLI of a kind, or null. */
function binaryOf(kind: Kind): { bin: string; version: string } | null {
  if (kind === 'claude') {
    const bin = findRealClaude() as string | null;
    return bin ? { bin, version: PINNED_CLAUDE_VERSION as string } : null;
  }
  const bin = findAgentCli(kind) as string | null;
  return bin ? { bin, version: (AGENT_CLIS as Record<string, { version: string }>)[kind]!.version } : null;
}

/** `bin --version` once: wall and CPU (user + system of the CLI and every process it waited for) in ms, from bash's `time`. */
function startOnce(bin: string, home: string): { wall: number; cpu: number } {
  const run = spawnSync('bash', ['-c', 'TIMEFORMAT="%3R %3U %3S"; { time "$0" --version >/dev/null 2>&1 </dev/null; } 2>&1', bin], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, HOME: home },
  });
  const [wall, user, sys] = run.stdout.trim().split('\n').at(-1)!.split(' ').map(Number);
  if (run.status !== 0 || [wall, user, sys].some((n) => !Number.isFinite(n))) throw new Error(`${bin} --version failed: ${run.stdout}${run.stderr}`);
  return { wall: wall! * 1000, cpu: (user! + sys!) * 1000 };
}

function startUp(kind: Kind): { version: string; wall: number; cpu: number } | null {
  const found = binaryOf(kind);
  if (!found) return null;
  // Its own HOME: some CLIs write state even for --version (Gemini CLI's projects.json).
  const home = mkdtempSync(join(tmpdir(), `obra-bench-agents-${kind}-`));
  mkdirSync(home, { recursive: true });
  startOnce(found.bin, home);
  const runs = Array.from({ length: STARTS }, () => startOnce(found.bin, home));
  return { version: found.version, wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)) };
}

function main(): void {
  const costs = PARSERS.map((p) => ({ parser: p, ...parseCost(p) }));
  const claude = costs.find((c) => c.parser.kind === 'claude')!.msPerMb;
  const rows = costs.map((c) => {
    const start = startUp(c.parser.kind);
    return [
      c.parser.kind,
      c.parser.sample.split('/').at(-1)!,
      `${c.mb.toFixed(1)} MB, ${c.lines} lines`,
      c.msPerMb.toFixed(1),
      `${(c.msPerMb / claude).toFixed(2)}×`,
      start ? start.version : 'not installed',
      start ? start.wall.toFixed(0) : '—',
      start ? start.cpu.toFixed(0) : '—',
    ];
  });
  const header = ['agent', 'sample (scaled)', 'stream', 'parse ms/MB', 'vs claude', 'CLI', '--version wall ms', '--version CPU ms'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
  process.stdout.write(`bench/agents — parsing: median of ${ROUNDS} runs; start-up: median of ${STARTS} (node ${process.version}, ${new Date().toISOString()})\n\n`);
  process.stdout.write(`${[line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`);
}

main();
