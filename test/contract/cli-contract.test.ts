import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockAnthropic, type MockAnthropic, type MockReply } from '../../fixtures/mock-anthropic/server.js';
import { realClaudeOrSkip, realEnv } from '../real-cli/real-claude.js';

/**
 * The CLI contract, run against fixtures/fake-claude and the real Claude Code binary (against the local
 * Messages API stand-in): every scenario yields a *shape* (exit code, which JSON objects with which keys and
 * value types, the first stderr line, which session ids came back) and the two shapes must be equal. Each
 * scenario also states the contract itself, so the fake is held to it even where the real CLI cannot run.
 */

const FAKE = resolve(import.meta.dirname, '../../fixtures/fake-claude');
const real = await realClaudeOrSkip();

/** What the "API" should do for one call. */
type Api = { text: string; delayMs?: number } | { error: number; message?: string } | { hang: true };

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
  transcriptExists(sessionId: string): boolean;
  /** What the API saw of the conversation in the last call (real: the requests; fake: the transcript). */
  conversationLength(sessionId: string): number;
}

let mock: MockAnthropic | null = null;
beforeAll(async () => {
  if (!real.claude) return;
  mock = await startMockAnthropic();
  mock.script((request) => scripted.get(request.sessionHeader ?? '') ?? 'CONTRACT-REPLY');
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
    const api = options.api ?? { text: 'CONTRACT-REPLY' };
    const reply = 'hang' in api ? { hang: true } : 'error' in api ? { api_error_status: api.error, api_error_message: api.message ?? `forced ${api.error}` } : { result: api.text, latency_ms: api.delayMs ?? 0 };
    // The same environment as the real CLI gets (CLAUDE_CODE_MAX_RETRIES=0 changes how a 529 is reported).
    return withoutEmpty({ PATH: process.env.PATH ?? '', HOME: w.home, CLAUDE_CODE_MAX_RETRIES: '0', FAKE_CLAUDE_REPLIES: JSON.stringify([reply]), FAKE_CLAUDE_STATE_DIR: join(w.root, 'state'), ...options.env });
  };
  const start = (args: string[], options: CallOptions = {}) =>
    execa(FAKE, args, { cwd: w.cwd, env: envFor(options), extendEnv: false, input: options.input ?? 'Say hello', reject: false, detached: true, timeout: 60_000 });
  return {
    flavour: 'fake',
    home: w.home,
    cwd: w.cwd,
    run: async (args, options) => runOf(await start(args, options)),
    runKilledAfterTranscript: (args, sessionId) => killAfter(start(args, { api: { hang: true } }), () => existsSync(w.transcript(sessionId))),
    transcriptExists: (id) => existsSync(w.transcript(id)),
    conversationLength: () => 0,
  };
}

function realCli(bin: string, api: MockAnthropic): Cli {
  const w = world('real');
  const start = (args: string[], options: CallOptions = {}) => {
    const a = options.api ?? { text: 'CONTRACT-REPLY' };
    const reply: MockReply = 'hang' in a ? { hang: true } : 'error' in a ? { error: a.error, errorMessage: a.message ?? `forced ${a.error}` } : { text: a.text, delayMs: a.delayMs };
    // Replies are picked per request by the session header, so concurrent scenarios do not see each other's.
    scripted.set(sessionFromArgs(args), reply);
    return execa(bin, args, {
      cwd: w.cwd,
      // The CLI's own API retries would take minutes against a stand-in that keeps failing: off here.
      env: withoutEmpty(realEnv(w.home, api.url, { CLAUDE_CODE_MAX_RETRIES: '0', ...options.env })),
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
    runKilledAfterTranscript: (args, sessionId) => killAfter(start(args, { api: { hang: true } }), () => existsSync(w.transcript(sessionId))),
    transcriptExists: (id) => existsSync(w.transcript(id)),
    conversationLength: (id) => api.requests.filter((r) => r.sessionHeader === id).at(-1)?.messages.length ?? 0,
  };
}

/** An empty value means "leave the variable unset". */
function withoutEmpty(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
}

/** Per-session replies for the shared stand-in (keyed by the id in the call's session flags). */
const scripted = new Map<string, MockReply>();
function sessionFromArgs(args: string[]): string {
  const at = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  return at('--session-id') ?? at('--resume') ?? 'none';
}

function runOf(result: { exitCode?: number; signal?: string; stdout?: unknown; stderr?: unknown }): Run {
  return { exitCode: typeof result.exitCode === 'number' ? result.exitCode : null, signal: result.signal ?? null, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
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
