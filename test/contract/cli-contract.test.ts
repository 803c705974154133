import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockAnthropic, type MockAnthropic, type MockReply } from '../../fixtures/mock-anthropic/server.js';
import { classify } from '../../src/agents/classify.js';
import { realClaudeOrSkip, realEnv } from '../real-cli/real-claude.js';

/**
 * The CLI contract, run against fixtures/fake-claude and the real Claude Code binary (against the local
 * Messages API stand-in): every scenario yields a *shape* (exit code, which JSON objects with which keys and
 * value types, the first stderr line, which session ids came back) and the two shapes must be equal. Each
 * scenario also states the contract itself, so the fake is held to it even where the real CLI cannot run.
 */

const FAKE = resolve(import.meta.dirname, '../../fixtures/fake-claude');
const real = await realClaudeOrSkip();

/** What the "API" should do for one call (in the real CLI's terms; the fake is scripted to behave the same). */
type Api =
  | { text: string; delayMs?: number }
  | { error: number; message?: string }
  | { hang: true }
  /** A subscriber's usage limit: 429 with the unified rate-limit headers (the real CLI needs CLAUDE_CODE_OAUTH_TOKEN). */
  | { usageLimit: { type: 'five_hour' | 'seven_day'; resetsAt: number; org?: boolean } }
  /** An answer sent with the headers of an account near its limit. */
  | { text: string; warning: { utilization: number; resetsAt: number } }
  /** `retries` answers of `status` the CLI retries by itself, then the text. */
  | { retries: number; status: number; text: string }
  /** The model asks to use a tool; once the CLI answers with the tool's result (or its refusal), `text`. */
  | { tool: { name: 'Write'; path: string; content: string } | { name: 'Bash'; command: string }; text: string }
  /** The model runs `ls`, then the next answer stops mid-stream. */
  | { stallAfterLs: true };

/** The stand-in's replies for one session, in order (the last repeats). */
function mockReplies(api: Api, cwd: string): MockReply[] {
  if ('hang' in api) return [{ hang: true }];
  if ('error' in api) return [{ error: api.error, errorMessage: api.message ?? `forced ${api.error}` }];
  if ('usageLimit' in api) {
    const { type, resetsAt, org } = api.usageLimit;
    const headers: Record<string, string> = {
      'anthropic-ratelimit-unified-status': 'rejected',
      'anthropic-ratelimit-unified-reset': String(resetsAt),
      'anthropic-ratelimit-unified-representative-claim': type,
      ...(org ? { 'anthropic-ratelimit-unified-overage-status': 'rejected', 'anthropic-ratelimit-unified-overage-disabled-reason': 'org_level_disabled_until' } : {}),
    };
    return [{ error: 429, errorMessage: RATE_LIMIT_MESSAGE, headers }];
  }
  if ('warning' in api) {
    const { utilization, resetsAt } = api.warning;
    const headers = {
      'anthropic-ratelimit-unified-status': 'allowed_warning',
      'anthropic-ratelimit-unified-reset': String(resetsAt),
      'anthropic-ratelimit-unified-representative-claim': 'five_hour',
      'anthropic-ratelimit-unified-5h-utilization': String(utilization),
      'anthropic-ratelimit-unified-5h-surpassed-threshold': String(Math.floor(utilization * 10) / 10),
      'anthropic-ratelimit-unified-5h-reset': String(resetsAt),
    };
    return [{ text: api.text, headers }];
  }
  if ('retries' in api) {
    // The stand-in usually says "do not retry" (fast tests); here the CLI's own retries are the point.
    const retry = { error: api.status, errorMessage: 'busy', headers: { 'x-should-retry': 'true', 'retry-after': '0' } };
    return [...Array.from({ length: api.retries }, () => retry), api.text];
  }
  if ('tool' in api) {
    const input = api.tool.name === 'Write' ? { file_path: join(cwd, api.tool.path), content: api.tool.content } : { command: api.tool.command, description: 'run it' };
    return [{ toolUse: { name: api.tool.name, input } }, api.text];
  }
  if ('stallAfterLs' in api) return [{ toolUse: { name: 'Bash', input: { command: 'ls', description: 'List files' } } }, { text: 'never finished', stallMidStream: true }];
  return [{ text: api.text, delayMs: api.delayMs }];
}

/** The same behaviour as a fake-claude reply. */
function fakeReply(api: Api): Record<string, unknown> {
  if ('hang' in api) return { hang: true };
  if ('error' in api) return { api_error_status: api.error, api_error_message: api.message ?? `forced ${api.error}` };
  if ('usageLimit' in api) return { usage_limit: { type: api.usageLimit.type, resets_at: api.usageLimit.resetsAt, org: api.usageLimit.org } };
  if ('warning' in api) return { result: api.text, usage_warning: { utilization: api.warning.utilization, resets_at: api.warning.resetsAt } };
  if ('retries' in api) return { result: api.text, api_retries: { count: api.retries, status: api.status } };
  if ('tool' in api) {
    const use = api.tool.name === 'Write' ? { files: { [api.tool.path]: api.tool.content } } : { bash: [api.tool.command] };
    return { result: api.text, denied_result: api.text, ...use };
  }
  if ('stallAfterLs' in api) return { stall: true };
  return { result: api.text, latency_ms: api.delayMs ?? 0 };
}

interface Run {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

interface CallOptions {
  input?: string;
  api?: Api;
  env?: Record<string, string>;
}

/** One CLI under test, in a world of its own (HOME, working directory). */
interface Cli {
  flavour: 'fake' | 'real';
  home: string;
  cwd: string;
  run(args: string[], options?: CallOptions): Promise<Run>;
  /** Starts a call whose API never answers and kills it (SIGKILL, whole group) once its transcript exists. */
  runKilledAfterTranscript(args: string[], sessionId: string): Promise<Run>;
  /** Starts a call and kills it (SIGKILL, whole group) once its stdout holds `lines` lines, or after `maxMs`. */
  runKilledAfterLines(args: string[], options: CallOptions, lines: number, maxMs: number): Promise<Run>;
  transcriptExists(sessionId: string): boolean;
  /** What the API saw of the conversation in the last call (real: the requests; fake: the transcript). */
  conversationLength(sessionId: string): number;
}

let mock: MockAnthropic | null = null;
beforeAll(async () => {
  if (!real.claude) return;
  mock = await startMockAnthropic();
  mock.script((request) => nextReply(request.sessionHeader ?? ''));
});
afterAll(async () => {
  await mock?.close();
});

function world(flavour: 'fake' | 'real') {
  const root = mkdtempSync(join(tmpdir(), `obra-contract-${flavour}-`));
  const home = join(root, 'home');
  const cwd = join(root, 'project.dir_x');
  mkdirSync(home, { recursive: true });
  mkdirSync(cwd, { recursive: true });
  const projectDir = join(home, '.claude', 'projects', resolve(cwd).replace(/[^a-zA-Z0-9]/g, '-'));
  return { root, home, cwd, transcript: (id: string) => join(projectDir, `${id}.jsonl`) };
}

function fakeCli(): Cli {
  const w = world('fake');
  const envFor = (options: CallOptions = {}) => {
    const reply = fakeReply(options.api ?? { text: 'CONTRACT-REPLY' });
    // The same environment as the real CLI gets (CLAUDE_CODE_MAX_RETRIES=0 changes how a 529 is reported).
    return withoutEmpty({ PATH: process.env.PATH ?? '', HOME: w.home, TZ: 'UTC', CLAUDE_CODE_MAX_RETRIES: '0', FAKE_CLAUDE_REPLIES: JSON.stringify([reply]), FAKE_CLAUDE_STATE_DIR: join(w.root, 'state'), ...options.env });
  };
  const start = (args: string[], options: CallOptions = {}) =>
    execa(FAKE, args, { cwd: w.cwd, env: envFor(options), extendEnv: false, input: options.input ?? 'Say hello', reject: false, detached: true, timeout: 60_000 });
  return {
    flavour: 'fake',
    home: w.home,
    cwd: w.cwd,
    run: async (args, options) => runOf(await start(args, options)),
    runKilledAfterTranscript: (args, sessionId) => killAfter(start(args, { api: { hang: true } }), () => hasCompleteLine(w.transcript(sessionId))),
    runKilledAfterLines: (args, options, lines, maxMs) => killAfterLines(start(args, options), lines, maxMs),
    transcriptExists: (id) => existsSync(w.transcript(id)),
    conversationLength: () => 0,
  };
}

function realCli(bin: string, api: MockAnthropic): Cli {
  const w = world('real');
  const start = (args: string[], options: CallOptions = {}) => {
    // Replies are picked per request by the session header, so concurrent scenarios do not see each other's.
    scripted.set(sessionFromArgs(args), { replies: mockReplies(options.api ?? { text: 'CONTRACT-REPLY' }, w.cwd), served: 0 });
    return execa(bin, args, {
      cwd: w.cwd,
      // The CLI's own API retries would take minutes against a stand-in that keeps failing: off here.
      env: withoutEmpty(realEnv(w.home, api.url, { TZ: 'UTC', CLAUDE_CODE_MAX_RETRIES: '0', ...options.env })),
      extendEnv: false,
      input: options.input ?? 'Say hello',
      reject: false,
      detached: true,
      timeout: 60_000,
    });
  };
  return {
    flavour: 'real',
    home: w.home,
    cwd: w.cwd,
    run: async (args, options) => runOf(await start(args, options)),
    runKilledAfterTranscript: (args, sessionId) => killAfter(start(args, { api: { hang: true } }), () => hasCompleteLine(w.transcript(sessionId))),
    runKilledAfterLines: (args, options, lines, maxMs) => killAfterLines(start(args, options), lines, maxMs),
    transcriptExists: (id) => existsSync(w.transcript(id)),
    conversationLength: (id) => api.requests.filter((r) => r.sessionHeader === id).at(-1)?.messages.length ?? 0,
  };
}

/** An empty value means "leave the variable unset". */
function withoutEmpty(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
}

/** Per-session replies for the shared stand-in (keyed by the id in the call's session flags), served in order. */
const scripted = new Map<string, { replies: MockReply[]; served: number }>();
function nextReply(session: string): MockReply {
  const entry = scripted.get(session);
  if (!entry) return 'CONTRACT-REPLY';
  const reply = entry.replies[Math.min(entry.served, entry.replies.length - 1)]!;
  entry.served += 1;
  return reply;
}
function sessionFromArgs(args: string[]): string {
  const at = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  return at('--session-id') ?? at('--resume') ?? 'none';
}

function runOf(result: { exitCode?: number; signal?: string; stdout?: unknown; stderr?: unknown }): Run {
  return { exitCode: typeof result.exitCode === 'number' ? result.exitCode : null, signal: result.signal ?? null, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
}

/**
 * Whether the transcript holds a whole line: the file appears before its first line is written, and a call killed
 * in between (a loaded machine makes that window wide) has not used up its session yet.
 */
function hasCompleteLine(path: string): boolean {
  if (!existsSync(path)) return false;
  const text = readFileSync(path, 'utf8');
  return text.includes('\n') && text.trim().length > 0;
}

async function killAfter(subprocess: ReturnType<typeof execa>, ready: () => boolean): Promise<Run> {
  const deadline = Date.now() + 20_000;
  while (!ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  try {
    process.kill(-subprocess.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
  return runOf(await subprocess);
}

/** Kills a call once it printed `lines` stdout lines and then stayed silent for a moment, or after `maxMs`. */
async function killAfterLines(subprocess: ReturnType<typeof execa>, lines: number, maxMs: number): Promise<Run> {
  let out = '';
  subprocess.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const deadline = Date.now() + maxMs;
  while (out.split('\n').filter(Boolean).length < lines && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // Anything the CLI would still print comes now (it must not: that is the point of the scenarios).
  await new Promise((r) => setTimeout(r, Math.min(1500, Math.max(0, deadline - Date.now()))));
  try {
    process.kill(-subprocess.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
  return runOf(await subprocess);
}

/** The kinds of the stdout lines (`system/init`, `assistant`, `rate_limit_event`, ...). */
function kindsOf(run: Run): string[] {
  return run.stdout.trim().split('\n').filter(Boolean).map((line) => {
    const o = JSON.parse(line) as { type?: string; subtype?: string };
    return [o.type, o.subtype].filter(Boolean).join('/');
  });
}

/** The stdout line of a kind, parsed. */
function lineOf(run: Run, type: string): Record<string, any> | undefined {
  return run.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>).find((o) => o.type === type);
}

/** How Obra classifies a finished call (the same code the agent runs). */
function classified(run: Run) {
  return classify({ stdout: run.stdout, stderr: run.stderr, exitCode: run.exitCode, signal: run.signal, stoppedBy: null, timeoutMs: 60_000, spawnError: null, overflow: false });
}

const SUBSCRIBER = { CLAUDE_CODE_OAUTH_TOKEN: 'dummy-oauth-token', ANTHROPIC_API_KEY: '' };
/** Reset times fixed once, so the real CLI and the fake see (and word) the very same ones. */
const NOW_S = Math.floor(Date.now() / 1000);
const inSeconds = (s: number) => NOW_S + s;
const RATE_LIMIT_MESSAGE = "This request would exceed your account's rate limit. Please try again later.";

// ---- shapes ---------------------------------------------------------------------------------------------

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;

/** Names for the session ids of a scenario: the ones it chose by name, others as `new1`, `new2`... */
class Ids {
  private readonly names = new Map<string, string>();
  private fresh = 0;
  constructor(known: Record<string, string>) {
    for (const [name, id] of Object.entries(known)) this.names.set(id, name);
  }
  name(id: string): string {
    if (!this.names.has(id)) this.names.set(id, `new${++this.fresh}`);
    return this.names.get(id)!;
  }
}

/** Keys that hold names (models) rather than fields: their values are compared, their names are not. */
const NAME_KEYED = new Set(['modelUsage']);

function typeShape(value: unknown, parentKey = ''): unknown {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value !== 'object') return typeof value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (NAME_KEYED.has(parentKey)) return entries.map(([, v]) => typeShape(v));
  return Object.fromEntries(entries.map(([k, v]) => [k, typeShape(v, k)]).sort(([a], [b]) => String(a).localeCompare(String(b))));
}

interface Shape {
  exit: number | null;
  signal: string | null;
  stdout: unknown;
  stderr: string;
}

/** Where the stand-in's address shows up in the CLI's wording (only with a custom base URL). */
const GATEWAY_HINT = / If it persists, check your inference gateway \([^)]*\)\./;

function shapeOf(run: Run, ids: Ids): Shape {
  const text = run.stdout.trim();
  let stdout: unknown = 'empty';
  if (text) {
    const lines = text.split('\n');
    try {
      const objects = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      stdout = objects.map((o) => ({
        kind: [o.type, o.subtype].filter(Boolean).join('/'),
        keys: typeShape(o),
        session: typeof o.session_id === 'string' ? ids.name(o.session_id) : null,
        ...(o.type === 'result' ? { is_error: o.is_error, subtype: o.subtype, api_error_status: o.api_error_status, result: String(o.result).replace(GATEWAY_HINT, '') } : {}),
        ...(o.type === 'assistant' ? { content: (o.message as { content: { type: string; text?: string }[] }).content.map((c) => `${c.type}:${c.text ?? ''}`.replace(GATEWAY_HINT, '')) } : {}),
      }));
    } catch {
      stdout = { text: lines.length };
    }
  }
  const stderr = (run.stderr.trim().split('\n')[0] ?? '').replace(UUID, (id) => `<${ids.name(id)}>`);
  return { exit: run.exitCode, signal: run.signal, stdout, stderr };
}

// ---- scenarios ------------------------------------------------------------------------------------------

interface Scenario {
  name: string;
  /** Runs the scenario; returns what to compare (shapes and facts) — identical for both CLIs. */
  play(cli: Cli): Promise<Record<string, unknown>>;
  /** The contract itself, checked on each CLI's result. */
  check(result: Record<string, unknown>): void;
}

const json = ['-p', '--output-format', 'json'];
const stream = ['-p', '--output-format', 'stream-json', '--verbose'];

const scenarios: Scenario[] = [
  {
    name: 'success, json: one result object on stdout, exit 0, the session id it was given',
    async play(cli) {
      const U = randomUUID();
      const ids = new Ids({ U });
      const run = await cli.run([...json, '--session-id', U], { api: { text: 'MOCK-REPLY 1' } });
      return { run: shapeOf(run, ids), transcript: cli.transcriptExists(U) };
    },
    check(r) {
      expect(r.run).toMatchObject({ exit: 0, stderr: '', stdout: [{ kind: 'result/success', session: 'U', is_error: false, result: 'MOCK-REPLY 1', api_error_status: null }] });
      expect(r.transcript).toBe(true);
    },
  },
  {
    name: 'success, stream-json --verbose: init, assistant, result lines (and --verbose is required)',
    async play(cli) {
      const U = randomUUID();
      const ids = new Ids({ U });
      const run = await cli.run([...stream, '--session-id', U], { api: { text: 'streamed answer' } });
      const noVerbose = await cli.run(['-p', '--output-format', 'stream-json', '--session-id', randomUUID()]);
      return { run: shapeOf(run, ids), noVerbose: shapeOf(noVerbose, ids) };
    },
    check(r) {
      const lines = (r.run as Shape).stdout as { kind: string }[];
      expect(lines.map((l) => l.kind)).toEqual(['system/init', 'assistant', 'result/success']);
      expect(r.noVerbose).toEqual({ exit: 1, signal: null, stdout: 'empty', stderr: 'Error: When using --print, --output-format=stream-json requires --verbose' });
    },
  },
  {
    name: '--session-id of an existing session: "already in use", exit 1, no output — and it stays so',
    async play(cli) {
      const U = randomUUID();
      const ids = new Ids({ U });
      await cli.run([...json, '--session-id', U]);
      const again = await cli.run([...json, '--session-id', U]);
      const later = await cli.run([...json, '--session-id', U]);
      return { again: shapeOf(again, ids), later: shapeOf(later, ids) };
    },
    check(r) {
      const inUse = { exit: 1, signal: null, stdout: 'empty', stderr: 'Error: Session ID <U> is already in use.' };
      expect(r.again).toEqual(inUse);
      expect(r.later).toEqual(inUse);
    },
  },
  {
    name: '--resume of an unknown session: "No conversation found", exit 1, no output',
    async play(cli) {
      const U = randomUUID();
      return { run: shapeOf(await cli.run([...json, '--resume', U]), new Ids({ U })), transcript: cli.transcriptExists(U) };
    },
    check(r) {
      expect(r.run).toEqual({ exit: 1, signal: null, stdout: 'empty', stderr: 'No conversation found with session ID: <U>' });
      expect(r.transcript).toBe(false);
    },
  },
  {
    name: '--resume continues the conversation at once, same session id back; --fork-session gives a new id',
    async play(cli) {
      const U = randomUUID();
      const F = randomUUID();
      const ids = new Ids({ U, F });
      const first = await cli.run([...json, '--session-id', U], { input: 'first prompt' });
      const lengthAfterFirst = cli.conversationLength(U);
      const resumed = await cli.run([...json, '--resume', U], { input: 'second prompt' });
      const lengthAfterResume = cli.conversationLength(U);
      const forked = await cli.run([...json, '--resume', U, '--fork-session'], { input: 'forked prompt' });
      const named = await cli.run([...json, '--resume', U, '--fork-session', '--session-id', F], { input: 'named fork' });
      const badCombo = await cli.run([...json, '--resume', U, '--session-id', randomUUID()]);
      return {
        first: shapeOf(first, ids),
        resumed: shapeOf(resumed, ids),
        forked: shapeOf(forked, ids),
        named: shapeOf(named, ids),
        badCombo: shapeOf(badCombo, ids),
        conversationGrew: cli.flavour === 'real' ? lengthAfterResume > lengthAfterFirst : true,
      };
    },
    check(r) {
      expect((r.resumed as Shape).stdout).toMatchObject([{ session: 'U', is_error: false }]);
      expect((r.forked as Shape).stdout).toMatchObject([{ session: 'new1', is_error: false }]);
      expect((r.named as Shape).stdout).toMatchObject([{ session: 'F' }]);
      expect(r.badCombo).toMatchObject({ exit: 1, stderr: 'Error: --session-id can only be used with --continue or --resume if --fork-session is also specified.' });
      expect(r.conversationGrew).toBe(true);
    },
  },
  {
    name: 'a first call that was killed still uses up its id: --session-id again is "in use", --resume works',
    async play(cli) {
      const U = randomUUID();
      const ids = new Ids({ U });
      const killed = await cli.runKilledAfterTranscript([...json, '--session-id', U], U);
      const create = await cli.run([...json, '--session-id', U]);
      const resume = await cli.run([...json, '--resume', U], { api: { text: 'after the kill' } });
      return { killed: { signal: killed.signal, stdout: killed.stdout }, create: shapeOf(create, ids), resume: shapeOf(resume, ids) };
    },
    check(r) {
      expect(r.killed).toEqual({ signal: 'SIGKILL', stdout: '' });
      expect((r.create as Shape).stderr).toBe('Error: Session ID <U> is already in use.');
      expect((r.resume as Shape).stdout).toMatchObject([{ session: 'U', result: 'after the kill' }]);
    },
  },
  {
    name: 'API errors: exit 1 and the result JSON with is_error, api_error_status, subtype "success"',
    async play(cli) {
      const out: Record<string, unknown> = {};
      for (const status of [400, 401, 429, 500, 529]) {
        const U = randomUUID();
        out[status] = shapeOf(await cli.run([...json, '--session-id', U], { api: { error: status, message: 'forced' } }), new Ids({ U }));
        out[`${status}-then-create`] = cli.transcriptExists(U); // the failed first call created the session
      }
      const U = randomUUID();
      out.streamed = shapeOf(await cli.run([...stream, '--session-id', U], { api: { error: 400, message: 'forced' } }), new Ids({ U }));
      return out;
    },
    check(r) {
      const result = (status: number) => ((r[status] as Shape).stdout as Record<string, unknown>[])[0]!;
      for (const status of [400, 401, 429, 500, 529]) {
        expect((r[status] as Shape).exit).toBe(1);
        expect(result(status)).toMatchObject({ kind: 'result/success', is_error: true, subtype: 'success', api_error_status: status });
        expect(r[`${status}-then-create`]).toBe(true);
      }
      expect(result(400).result).toBe('API Error: 400 forced');
      expect(result(401).result).toBe('Failed to authenticate. API Error: 401 forced');
      expect(result(429).result).toBe('API Error: Request rejected (429) · forced');
      expect(result(529).result).toBe('API Error: 529 forced. This is a server-side issue, usually temporary — try again in a moment.');
      // In stream-json the error also comes as a synthetic assistant message.
      expect(((r.streamed as Shape).stdout as { kind: string }[]).map((l) => l.kind)).toEqual(['system/init', 'assistant', 'result/success']);
    },
  },
  {
    name: 'overloaded after the CLI\'s own retries: "Repeated 529 Overloaded errors" with api_error_status null',
    async play(cli) {
      const U = randomUUID();
      // The CLI's default retries (CLAUDE_CODE_MAX_RETRIES unset) take ~2 s for 529s.
      const run = await cli.run([...json, '--session-id', U], { api: { error: 529, message: 'Overloaded' }, env: { CLAUDE_CODE_MAX_RETRIES: '' } });
      return { run: shapeOf(run, new Ids({ U })) };
    },
    check(r) {
      expect((r.run as Shape).exit).toBe(1);
      expect(((r.run as Shape).stdout as Record<string, unknown>[])[0]).toMatchObject({ is_error: true, api_error_status: null, result: expect.stringMatching(/^API Error: Repeated 529 Overloaded errors\./) });
    },
  },
  {
    name: 'the prompt comes on stdin, of any length; an empty one is refused',
    async play(cli) {
      const U = randomUUID();
      const ids = new Ids({ U });
      const long = `${'Lorem ipsum dolor sit amet. '.repeat(8000)}END`; // ~220 KB: far beyond what argv allows
      const run = await cli.run([...json, '--session-id', U], { input: long, api: { text: 'read it' } });
      const empty = await cli.run([...json, '--session-id', randomUUID()], { input: '' });
      const blank = await cli.run([...json, '--session-id', randomUUID()], { input: '  \n' });
      return { run: shapeOf(run, ids), empty: shapeOf(empty, ids), blank: shapeOf(blank, ids) };
    },
    check(r) {
      expect((r.run as Shape).stdout).toMatchObject([{ result: 'read it', session: 'U' }]);
      expect(r.empty).toEqual({ exit: 1, signal: null, stdout: 'empty', stderr: 'Error: Input must be provided either through stdin or as a prompt argument when using --print' });
      expect(r.blank).toEqual({ exit: 1, signal: null, stdout: 'empty', stderr: 'Error: No messages returned from query' });
    },
  },
  {
    name: 'bad flags and non-UUID session ids are refused before any API call',
    async play(cli) {
      const ids = new Ids({});
      return {
        unknownFlag: shapeOf(await cli.run([...json, '--no-such-flag']), ids),
        badFormat: shapeOf(await cli.run(['-p', '--output-format', 'yaml']), ids),
        badSessionId: shapeOf(await cli.run([...json, '--session-id', 'not-a-uuid']), ids),
        badResume: shapeOf(await cli.run([...json, '--resume', 'not-a-uuid']), ids),
      };
    },
    check(r) {
      expect(r.unknownFlag).toEqual({ exit: 1, signal: null, stdout: 'empty', stderr: "error: unknown option '--no-such-flag'" });
      expect(r.badFormat).toMatchObject({ exit: 1, stderr: "error: option '--output-format <format>' argument 'yaml' is invalid. Allowed choices are text, json, stream-json." });
      expect(r.badSessionId).toMatchObject({ exit: 1, stderr: 'Error: Invalid session ID. Must be a valid UUID.' });
      expect(r.badResume).toMatchObject({ exit: 1, stderr: expect.stringMatching(/^Error: --resume requires a valid session ID/) });
    },
  },
  {
    name: 'no lock in the CLI: two concurrent --resume of one session both succeed (Obra must serialise them)',
    async play(cli) {
      const U = randomUUID();
      const ids = new Ids({ U });
      await cli.run([...json, '--session-id', U]);
      const [a, b] = await Promise.all([
        cli.run([...json, '--resume', U], { api: { text: 'slow answer', delayMs: 1500 } }),
        cli.run([...json, '--resume', U], { api: { text: 'slow answer', delayMs: 1500 } }),
      ]);
      return { a: shapeOf(a, ids), b: shapeOf(b, ids) };
    },
    check(r) {
      expect((r.a as Shape).exit).toBe(0);
      expect((r.b as Shape).exit).toBe(0);
    },
  },
  {
    name: 'usage limit (subscriber): rate_limit_event "rejected" with resetsAt, then a 429 result "You\'ve hit your session limit · resets ..."',
    async play(cli) {
      const U = randomUUID();
      const resetsAt = inSeconds(3 * 3600);
      const run = await cli.run([...stream, '--session-id', U], { api: { usageLimit: { type: 'five_hour', resetsAt } }, env: SUBSCRIBER });
      return { run: shapeOf(run, new Ids({ U })), info: lineOf(run, 'rate_limit_event')?.rate_limit_info, resetsAt, outcome: classified(run) };
    },
    check(r) {
      const run = r.run as Shape;
      expect(run.exit).toBe(1);
      expect((run.stdout as { kind: string }[]).map((l) => l.kind)).toEqual(['system/init', 'rate_limit_event', 'assistant', 'result/success']);
      expect((run.stdout as Record<string, unknown>[]).at(-1)).toMatchObject({ is_error: true, api_error_status: 429, result: expect.stringMatching(/^You've hit your session limit · resets \d{1,2}(:\d{2})?(am|pm) \(UTC\)$/) });
      expect(r.info).toEqual({ status: 'rejected', resetsAt: r.resetsAt, rateLimitType: 'five_hour', isUsingOverage: false });
      expect(r.outcome).toMatchObject({ kind: 'usageLimit', limitType: 'five_hour', resetsAt: (r.resetsAt as number) * 1000, blockedBy: null });
    },
  },
  {
    name: 'usage limit resetting on the hour: "resets 8pm (UTC)", the minutes left out',
    async play(cli) {
      const U = randomUUID();
      const resetsAt = Math.ceil((NOW_S + 2 * 3600) / 3600) * 3600;
      const run = await cli.run([...stream, '--session-id', U], { api: { usageLimit: { type: 'five_hour', resetsAt } }, env: SUBSCRIBER });
      return { run: shapeOf(run, new Ids({ U })) };
    },
    check(r) {
      expect(((r.run as Shape).stdout as Record<string, unknown>[]).at(-1)).toMatchObject({ result: expect.stringMatching(/^You've hit your session limit · resets \d{1,2}(am|pm) \(UTC\)$/) });
    },
  },
  {
    name: 'usage limit, weekly and three days away: "You\'ve hit your weekly limit · resets <date>, <time>"',
    async play(cli) {
      const U = randomUUID();
      const resetsAt = inSeconds(3 * 86_400);
      const run = await cli.run([...stream, '--session-id', U], { api: { usageLimit: { type: 'seven_day', resetsAt } }, env: SUBSCRIBER });
      return { run: shapeOf(run, new Ids({ U })), resetsAt, outcome: classified(run) };
    },
    check(r) {
      expect(((r.run as Shape).stdout as Record<string, unknown>[]).at(-1)).toMatchObject({ result: expect.stringMatching(/^You've hit your weekly limit · resets [A-Z][a-z]{2} \d{1,2}, \d{1,2}(:\d{2})?(am|pm) \(UTC\)$/) });
      expect(r.outcome).toMatchObject({ kind: 'usageLimit', limitType: 'seven_day', resetsAt: (r.resetsAt as number) * 1000 });
    },
  },
  {
    name: "usage limit of an org's spend: nothing to wait for (Obra's outcome has no reset)",
    async play(cli) {
      const U = randomUUID();
      const run = await cli.run([...stream, '--session-id', U], { api: { usageLimit: { type: 'five_hour', resetsAt: inSeconds(3600), org: true } }, env: SUBSCRIBER });
      return { run: shapeOf(run, new Ids({ U })), info: lineOf(run, 'rate_limit_event')?.rate_limit_info, outcome: classified(run) };
    },
    check(r) {
      expect(((r.run as Shape).stdout as Record<string, unknown>[]).at(-1)).toMatchObject({ result: "You've hit your org's monthly spend limit · ask your admin to raise it at claude.ai/settings/usage" });
      expect(r.info).toMatchObject({ status: 'rejected', overageStatus: 'rejected', overageDisabledReason: 'org_level_disabled_until' });
      expect(r.outcome).toMatchObject({ kind: 'usageLimit', resetsAt: null, blockedBy: expect.stringContaining('org_level_disabled_until') });
    },
  },
  {
    name: 'the same limit for an API-key user: no rate_limit_event, a plain 429 (an ordinary rate limit)',
    async play(cli) {
      const U = randomUUID();
      const run = await cli.run([...stream, '--session-id', U], { api: { usageLimit: { type: 'five_hour', resetsAt: inSeconds(3600) } } });
      return { run: shapeOf(run, new Ids({ U })), outcome: classified(run).kind };
    },
    check(r) {
      expect(((r.run as Shape).stdout as { kind: string }[]).map((l) => l.kind)).toEqual(['system/init', 'assistant', 'result/success']);
      expect(((r.run as Shape).stdout as Record<string, unknown>[]).at(-1)).toMatchObject({ api_error_status: 429, result: expect.stringMatching(/^API Error: Request rejected \(429\)/) });
      expect(r.outcome).toBe('rateLimited');
    },
  },
  {
    name: 'a subscriber near the limit: the answer, then rate_limit_event "allowed_warning" with its utilization',
    async play(cli) {
      const U = randomUUID();
      const resetsAt = inSeconds(2 * 3600);
      const run = await cli.run([...stream, '--session-id', U], { api: { text: 'near the limit', warning: { utilization: 0.92, resetsAt } }, env: SUBSCRIBER });
      return { run: shapeOf(run, new Ids({ U })), info: lineOf(run, 'rate_limit_event')?.rate_limit_info, resetsAt };
    },
    check(r) {
      expect(((r.run as Shape).stdout as { kind: string }[]).map((l) => l.kind)).toEqual(['system/init', 'assistant', 'rate_limit_event', 'result/success']);
      expect(r.info).toEqual({ status: 'allowed_warning', resetsAt: r.resetsAt, rateLimitType: 'five_hour', utilization: 0.92, isUsingOverage: false, surpassedThreshold: 0.9 });
    },
  },
  {
    name: "API-key 429s: the CLI retries by itself, one api_retry line each, then answers",
    async play(cli) {
      const U = randomUUID();
      const run = await cli.run([...stream, '--session-id', U], { api: { retries: 2, status: 429, text: 'after two retries' }, env: { CLAUDE_CODE_MAX_RETRIES: '' } });
      const retry = lineOf(run, 'system') && run.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((o) => o.subtype === 'api_retry');
      return { run: shapeOf(run, new Ids({ U })), retry: retry ? { attempt: retry.attempt, max_retries: retry.max_retries, error_status: retry.error_status, error: retry.error } : null };
    },
    check(r) {
      expect(((r.run as Shape).stdout as { kind: string }[]).map((l) => l.kind)).toEqual(['system/init', 'system/api_retry', 'system/api_retry', 'assistant', 'result/success']);
      expect(r.retry).toEqual({ attempt: 1, max_retries: 10, error_status: 429, error: 'rate_limit' });
    },
  },
  {
    name: 'a hung API with API_TIMEOUT_MS: each attempt cut, api_retry "unknown", then "Request timed out"',
    async play(cli) {
      const U = randomUUID();
      const run = await cli.run([...stream, '--session-id', U], { api: { hang: true }, env: { API_TIMEOUT_MS: '1500', CLAUDE_CODE_MAX_RETRIES: '1' } });
      return { run: shapeOf(run, new Ids({ U })) };
    },
    check(r) {
      const run = r.run as Shape;
      expect(run.exit).toBe(1);
      expect((run.stdout as { kind: string }[]).map((l) => l.kind)).toEqual(['system/init', 'system/api_retry', 'assistant', 'result/success']);
      expect((run.stdout as Record<string, unknown>[]).at(-1)).toMatchObject({ is_error: true, api_error_status: null, result: 'Request timed out' });
    },
  },
  {
    name: 'a hung API without API_TIMEOUT_MS: system/init, then silence (Obra\'s watchdog must end it)',
    async play(cli) {
      const U = randomUUID();
      const run = await cli.runKilledAfterLines([...stream, '--session-id', U], { api: { hang: true } }, 1, 15_000);
      return { kinds: kindsOf(run), signal: run.signal };
    },
    check(r) {
      expect(r).toEqual({ kinds: ['system/init'], signal: 'SIGKILL' });
    },
  },
  {
    name: 'a stream that stops mid-answer: the steps before it, then silence',
    async play(cli) {
      const U = randomUUID();
      const run = await cli.runKilledAfterLines([...stream, '--session-id', U, '--permission-mode', 'acceptEdits'], { api: { stallAfterLs: true } }, 3, 6000);
      return { kinds: kindsOf(run), signal: run.signal };
    },
    check(r) {
      expect(r).toEqual({ kinds: ['system/init', 'assistant', 'user'], signal: 'SIGKILL' });
    },
  },
  {
    name: 'permissions: a Write is refused by default (listed in permission_denials) and allowed with acceptEdits',
    async play(cli) {
      const tool = { name: 'Write' as const, path: 'notes.txt', content: 'hello\n' };
      const denied = await cli.run([...stream, '--session-id', randomUUID()], { api: { tool, text: 'tried to write.\nSTATUS: CONTINUE' } });
      const deniedFile = existsSync(join(cli.cwd, 'notes.txt'));
      const allowed = await cli.run([...stream, '--session-id', randomUUID(), '--permission-mode', 'acceptEdits'], { api: { tool, text: 'wrote it.\nSTATUS: DONE' } });
      const denials = (run: Run) => (lineOf(run, 'result')?.permission_denials as { tool_name: string; tool_input: Record<string, unknown> }[]).map((d) => ({ tool: d.tool_name, input: Object.keys(d.tool_input).sort() }));
      return {
        denied: { kinds: kindsOf(denied), denials: denials(denied), file: deniedFile, result: lineOf(denied, 'result')?.result },
        allowed: { kinds: kindsOf(allowed), denials: denials(allowed), file: existsSync(join(cli.cwd, 'notes.txt')) },
        refusal: (lineOf(denied, 'user')?.message?.content?.[0]?.content as string | undefined)?.replace(cli.cwd, '<cwd>'),
      };
    },
    check(r) {
      expect(r.denied).toEqual({ kinds: ['system/init', 'assistant', 'user', 'assistant', 'result/success'], denials: [{ tool: 'Write', input: ['content', 'file_path'] }], file: false, result: 'tried to write.\nSTATUS: CONTINUE' });
      expect(r.allowed).toEqual({ kinds: ['system/init', 'assistant', 'user', 'assistant', 'result/success'], denials: [], file: true });
      expect(r.refusal).toBe("Claude requested permissions to write to <cwd>/notes.txt, but you haven't granted it yet.");
    },
  },
  {
    name: 'permissions: a Bash command is refused under acceptEdits and allowed by --allowedTools "Bash(<command>)"',
    async play(cli) {
      const command = `node -e "require('fs').writeFileSync('ran.txt', 'ok')"`;
      const tool = { name: 'Bash' as const, command };
      const denied = await cli.run([...stream, '--session-id', randomUUID(), '--permission-mode', 'acceptEdits'], { api: { tool, text: 'could not run it.\nSTATUS: CONTINUE' } });
      const deniedFile = existsSync(join(cli.cwd, 'ran.txt'));
      const allowed = await cli.run([...stream, '--session-id', randomUUID(), '--permission-mode', 'acceptEdits', '--allowedTools', 'Write', '--allowedTools', `Bash(${command})`], { api: { tool, text: 'ran it.\nSTATUS: DONE' } });
      const denials = (run: Run) => (lineOf(run, 'result')?.permission_denials as { tool_name: string; tool_input: { command?: string } }[]).map((d) => `${d.tool_name}: ${d.tool_input.command}`);
      return {
        denied: { denials: denials(denied), file: deniedFile, refusal: lineOf(denied, 'user')?.message?.content?.[0]?.content },
        allowed: { denials: denials(allowed), file: existsSync(join(cli.cwd, 'ran.txt')) },
      };
    },
    check(r) {
      expect(r.denied).toEqual({ denials: [`Bash: node -e "require('fs').writeFileSync('ran.txt', 'ok')"`], file: false, refusal: 'This command requires approval' });
      expect(r.allowed).toEqual({ denials: [], file: true });
    },
  },
];

describe('the Claude Code CLI contract: fixtures/fake-claude', () => {
  it.concurrent.each(scenarios.map((s) => [s.name, s] as const))('%s', async (_name, scenario) => {
    scenario.check(await scenario.play(fakeCli()));
  });
});

describe.skipIf(!real.claude)(`the Claude Code CLI contract: the real CLI ${real.claude?.version ?? `(skipped: ${real.skip})`} against the fake`, () => {
  // A real call takes 0.5–1 s alone and several seconds on a busy 2-core machine: generous timeouts.
  it.concurrent.each(scenarios.map((s) => [s.name, s] as const))('%s', { timeout: 180_000 }, async (_name, scenario) => {
    const realResult = await scenario.play(realCli(real.claude!.bin, mock!));
    const fakeResult = await scenario.play(fakeCli());
    scenario.check(realResult);
    expect(fakeResult).toEqual(realResult);
  });

  it('the transcript folder is the working directory with every non-alphanumeric character turned into "-"', { timeout: 60_000 }, async () => {
    const cli = realCli(real.claude!.bin, mock!);
    const U = randomUUID();
    await cli.run([...json, '--session-id', U]);
    expect(readdirSync(join(cli.home, '.claude', 'projects'))).toEqual([resolve(cli.cwd).replace(/[^a-zA-Z0-9]/g, '-')]);
  });
});
