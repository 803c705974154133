import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { defaultConfig, type ObraConfig } from '../config/schema.js';
import { UserError } from '../core/errors.js';
import { machineGraphs } from '../graph/machine-export.js';
import { DEFAULT_VIEWER_PORT, isLocalAuthority, listenLocally, LOCAL_HOST } from '../inspector/listen.js';
import { RunStore } from '../store/run-store.js';
import { sameToken, storeToken } from '../store/token.js';
import { BOARD_COLUMNS, type BoardColumn } from '../core/status-line.js';
import { readEventsFrom } from '../store/event-log.js';
import { BOARD_CSS, BOARD_JS, boardPage } from './board.js';
import { boardData, countsOf, type BoardData } from './board-data.js';
import { openEventStream, type EventStream } from './sse.js';
import { spendOf, spendSvg } from './spend.js';
import { StoreFeed } from './store-feed.js';
import { runWorkbench } from './workbench-data.js';
import { RUN_WORKBENCH_CSS, RUN_WORKBENCH_JS } from './run-workbench.js';
import { drawChart } from './chart.js';
import { CONTENT_SECURITY_POLICY, runPage, VIEWER_CSS, VIEWER_JS, type RunListItem } from './page.js';
import { viewerRun } from './run-data.js';
import { BackgroundDrives } from '../workbench/drives.js';
import { errorReply, handleApi, type ApiContext } from './api.js';

/**
 * `obra view`: a small web server on 127.0.0.1, the workbench: the tasks of a store on a board, each run's page
 * (its live events, its question, its review, and the steps over the statecharts drawn from the machine
 * definitions). The board reads an index of the store kept current by watching it (./store-feed.ts), and both
 * pages are pushed changes (Server-Sent Events). Its API (./api.ts) changes the store, and only for a request that
 * names this server as its Host (DNS rebinding), comes from no other origin (CSRF) and carries the store's token.
 */

export { DEFAULT_VIEWER_PORT };

export interface ViewerServerOptions {
  storeDir: string;
  port?: number;
  /** The address it listens on (default 127.0.0.1). Any other than a loopback one asks for the token on every request. */
  host?: string;
  /** The config of the tasks submitted through the API (default: the defaults). */
  config?: ObraConfig;
  /** Where a submitted task's relative `repo` is resolved (default: the current directory). */
  cwd?: string;
  /** The Claude Code binary of the runs the API drives on (default: the one each was submitted with). */
  agentCommand?: string;
  /** A drive started by the API that failed after its request was answered (default: a line on stderr). */
  onDriveError?: (runId: string, error: unknown) => void;
  /** Send the config's notifications for the runs the API drives on, as `obra work` does (default: no). */
  notify?: boolean;
}

export interface ViewerServer {
  /** The page listing the runs. */
  readonly url: string;
  readonly port: number;
  /** The store's secret token, which every request that changes anything must carry. */
  readonly token: string;
  /** The page of one run. */
  runUrl(runId: string): string;
  close(): Promise<void>;
}

export async function startViewerServer(options: ViewerServerOptions): Promise<ViewerServer> {
  const host = options.host ?? LOCAL_HOST;
  // The store must exist before anything is served (a mistyped --db is a UserError, not an empty page).
  const store = RunStore.open(options.storeDir, { create: false });
  const token = storeToken(store.dir);
  const loopback = isLoopback(host);
  const config = options.config ?? defaultConfig();
  const drives = new BackgroundDrives({
    storeDir: store.dir,
    config,
    agentCommand: options.agentCommand,
    onError: options.onDriveError ?? ((runId, error) => process.stderr.write(`obra view: run ${runId}: ${error instanceof Error ? error.message : String(error)}\n`)),
    notify: options.notify ? { onWarning: (line) => process.stderr.write(`obra view: WARNING ${line}\n`) } : undefined,
  });
  const api: ApiContext = { storeDir: store.dir, config, cwd: resolve(options.cwd ?? process.cwd()), drives };
  // The board's index, kept current by watching the store: read once here, for every page and stream.
  const feed = new StoreFeed(store).start();
  const graphs = machineGraphs();
  const charts = { iteration: drawChart(graphs.iteration), task: drawChart(graphs.task) };
  let port = options.port ?? DEFAULT_VIEWER_PORT;

  const http = createServer((request, response) => {
    route(request, response).catch((error: unknown) => {
      const status = error instanceof UserError ? 404 : 500;
      send(response, status, 'text/plain; charset=utf-8', `${error instanceof Error ? error.message : String(error)}\n`);
    });
  });

  async function route(request: IncomingMessage, response: ServerResponse) {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = decodeURIComponent(url.pathname);
    const isApi = path.startsWith('/api/');
    const refuse = (status: number, error: string) => (isApi ? sendJson(response, status, { error }) : send(response, status, 'text/plain', `${error}\n`));
    if (!isAllowedHost(request.headers.host, port, loopback)) return refuse(403, 'Forbidden: open the viewer through 127.0.0.1 or localhost');
    const reads = request.method === 'GET' || request.method === 'HEAD';
    // Nothing changes on GET: a write needs POST, from no other origin, with the token.
    if (!reads) {
      if (!isApi) return refuse(405, 'Only GET');
      const origin = crossOrigin(request);
      if (origin) return refuse(403, `Forbidden: a request from ${origin} may not change anything here — use the API from the viewer's own pages or without a browser`);
      const problem = tokenProblem(request.headers.authorization, token);
      if (problem) return refuse(401, problem);
    } else if (!loopback && !readsAllowed(request, token)) {
      // Bound beyond this machine: reading needs the token too (the URL `obra view` prints sets a cookie).
      return refuse(401, 'Unauthorized: open the URL `obra view` printed (…/?token=…), or send Authorization: Bearer <token>');
    }
    const query = url.searchParams;
    if (reads) {
      const live = /^\/api\/runs\/([^/]+)\/(events|workbench|review)$/.exec(path);
      if (path === '/api/board/events') return boardStream(response);
      if (live?.[2] === 'events') return runStream(live[1]!, request, response, query);
      if (live?.[2] === 'workbench') return sendJson(response, 200, runWorkbench(store, live[1]!));
      if (live?.[2] === 'review') return review(live[1]!, query.get('iteration'), response);
    }
    const answer = await handleApi(request.method ?? 'GET', path, () => readJson(request), api);
    if (answer) {
      // Tell the open pages now (the store's watch would, a little later).
      if (!reads && answer.status < 300) for (const id of touchedBy(path, answer.body)) feed.touch(id);
      return sendJson(response, answer.status, answer.body);
    }
    if (!reads) return refuse(404, `no API action at ${request.method} ${path}`);
    const welcome = tokenCookie(request, token, loopback);
    if (path === '/assets/viewer.css') return send(response, 200, 'text/css; charset=utf-8', VIEWER_CSS + BOARD_CSS + RUN_WORKBENCH_CSS);
    if (path === '/assets/diff2html.css') return send(response, 200, 'text/css; charset=utf-8', diff2htmlCss());
    if (path === '/assets/viewer.js') return send(response, 200, 'text/javascript; charset=utf-8', VIEWER_JS);
    if (path === '/assets/workbench.js') return send(response, 200, 'text/javascript; charset=utf-8', RUN_WORKBENCH_JS);
    if (path === '/assets/board.js') return send(response, 200, 'text/javascript; charset=utf-8', BOARD_JS);
    if (path === '/') return send(response, 200, 'text/html; charset=utf-8', boardPage(board(query)), welcome);
    if (path === '/api/board') return send(response, 200, 'application/json', JSON.stringify(board(query)));
    if (path === '/api/runs') return send(response, 200, 'application/json', JSON.stringify(listRuns()));
    const run = /^\/api\/runs\/([^/]+)$/.exec(path);
    if (run) return send(response, 200, 'application/json', JSON.stringify(runData(run[1]!)));
    const page = /^\/runs\/([^/]+)$/.exec(path);
    if (page) return send(response, 200, 'text/html; charset=utf-8', runPage(page[1]!, charts, runData(page[1]!)), welcome);
    return send(response, 404, 'text/plain', 'Not found\n');
  }

  /** The board's first page (?per_column=N, ?column=<key> for one column's), from the index: no file is read. */
  function board(query?: URLSearchParams): BoardData {
    const column = query?.get('column');
    if (column && !BOARD_COLUMNS.some((c) => c.key === column)) throw new UserError(`no column "${column}" — the columns are ${BOARD_COLUMNS.map((c) => c.key).join(', ')}`);
    const perColumn = Number(query?.get('per_column')) || undefined;
    // Worked out once per change of the store, whoever asks; while tasks are queued, at most a second old (what they wait for moves on its own).
    const key = `${feed.version}|${perColumn}|${column}`;
    if (boardCache?.key === key && (boardCache.data.counts.queued === 0 || Date.now() - boardCache.at < BOARD_CACHE_MS)) return boardCache.data;
    const data = boardData(store.dir, feed.tasks(), { perColumn, column: (column as BoardColumn | null) ?? undefined });
    boardCache = { key, at: Date.now(), data };
    return data;
  }
  let boardCache: { key: string; at: number; data: BoardData } | null = null;

  /**
   * The board's streams: each change of the store is worked out once (the counts, the spend when it moved) and
   * sent to every open board with the cards that changed.
   */
  const boards = new Set<EventStream>();
  let lastSpend = '';
  feed.onBoard((change) => {
    if (!boards.size) return;
    // The counts and the spend need no card worked out again: the index's as read.
    const cards = feed.cards();
    const spend = spendOf(cards);
    const svg = spendSvg(spend);
    const moved = svg !== lastSpend;
    lastSpend = svg;
    const message = { at: new Date().toISOString(), tasks: change.tasks, removed: change.removed, counts: countsOf(cards), ...(moved ? { spend, spendSvg: svg } : {}) };
    for (const stream of boards) stream.send('tasks', message);
  });
  function boardStream(response: ServerResponse): void {
    const stream = openEventStream(response);
    if (!boards.size) lastSpend = board().spendSvg;
    boards.add(stream);
    stream.onClose(() => boards.delete(stream));
    stream.send('ready', { at: new Date().toISOString() });
  }

  /**
   * A run's stream: its live events from the start (or from the byte a reconnecting page names in Last-Event-ID),
   * then each as it is appended; a `run` event when the run's own files change (its status, its state).
   */
  function runStream(runId: string, request: IncomingMessage, response: ServerResponse, query: URLSearchParams): void {
    const dir = store.runDir(runId);
    store.peekStatus(runId);
    const stream = openEventStream(response);
    let offset = Number(request.headers['last-event-id'] ?? query.get('from') ?? 0) || 0;
    const drain = () => {
      const { events, next } = readEventsFrom(dir, offset);
      offset = next;
      if (events.length) stream.send('events', events, offset);
    };
    stream.onClose(
      feed.onRun(runId, (change) => {
        if (change === 'events') drain();
        else stream.send('run', { runId, at: new Date().toISOString() });
      }),
    );
    drain();
    stream.send('ready', { offset });
  }

  async function review(runId: string, iteration: string | null, response: ServerResponse): Promise<void> {
    const { reviewRun } = await import('../workbench/review.js');
    const index = iteration === null || iteration === '' ? null : Number(iteration);
    if (index !== null && !Number.isInteger(index)) return sendJson(response, 400, { error: `?iteration= must be an iteration's number, not "${iteration}"` });
    try {
      sendJson(response, 200, await reviewRun(runId, store.dir, index));
    } catch (error) {
      const reply = errorReply(error);
      sendJson(response, reply.status, reply.body);
    }
  }

  function runData(runId: string) {
    const handle = store.openRun(runId);
    try {
      return viewerRun(handle, handle.effectiveStatus());
    } finally {
      handle.close();
    }
  }

  function listRuns(): RunListItem[] {
    return store.listRunIds().flatMap((runId) => {
      try {
        const handle = store.openRun(runId);
        const file = handle.file;
        const item = { runId, status: handle.effectiveStatus(), task: file.task.text, iterations: file.iterations, costUsd: file.totalCostUsd, startedAt: file.createdAt };
        handle.close();
        return [item];
      } catch {
        return [{ runId, status: 'unreadable', task: '?', iterations: 0, costUsd: 0, startedAt: '' }];
      }
    });
  }

  try {
    port = await listenLocally(http, port, host, 'viewer');
  } catch (error) {
    // Its watches would keep the process alive.
    feed.close();
    throw error;
  }
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url: `${base}/`,
    port,
    token,
    runUrl: (runId) => `${base}/runs/${encodeURIComponent(runId)}`,
    close: async () => {
      // The runs the API drives are interrupted (saved, resumable), then the server stops.
      feed.close();
      await drives.close();
      await new Promise<void>((resolveClose) => {
        http.close(() => resolveClose());
        http.closeAllConnections();
      });
    },
  };
}

/** How long the board's page is served again unchanged (its queued cards say what they wait for, which moves on its own). */
const BOARD_CACHE_MS = 1000;

const LOOPBACK = ['127.0.0.1', '::1', 'localhost'];
const isLoopback = (host: string) => LOOPBACK.includes(host) || /^127\./.test(host);

/**
 * The Host a request names: this machine's own names, and (when bound beyond it) any IP address, all with this
 * server's port. A DNS name that merely resolves here is refused: that is how DNS rebinding reaches a local server.
 */
function isAllowedHost(value: string | undefined, port: number, loopback: boolean): boolean {
  if (isLocalAuthority(value, port)) return true;
  if (loopback || !value) return false;
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  return Boolean(match && Number(match[3]) === port && isIP(match[1] ?? match[2]!));
}

/** The origin of a browser request from another site (null for this server's own pages and for non-browsers). */
function crossOrigin(request: IncomingMessage): string | null {
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== `http://${request.headers.host}`) return origin;
  const site = request.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return `another site (Sec-Fetch-Site: ${site})`;
  return null;
}

/** What is wrong with a request's `Authorization` header, or null when it carries the token. */
function tokenProblem(header: string | undefined, token: string): string | null {
  const given = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
  if (header === undefined) return 'Unauthorized: send the store\'s token as Authorization: Bearer <token> (it is in the URL `obra view` prints)';
  if (given === undefined) return 'Unauthorized: the Authorization header must be "Bearer <token>"';
  if (!sameToken(given, token)) return 'Unauthorized: wrong token — use the one in the URL `obra view` prints';
  return null;
}

const COOKIE = 'obra_token';

/** A read on a server bound beyond this machine: with the token as a Bearer header, the page's cookie, or ?token=. */
function readsAllowed(request: IncomingMessage, token: string): boolean {
  if (tokenProblem(request.headers.authorization, token) === null) return true;
  const cookie = (request.headers.cookie ?? '').split(/;\s*/).find((c) => c.startsWith(`${COOKIE}=`))?.slice(COOKIE.length + 1);
  if (cookie && sameToken(cookie, token)) return true;
  const query = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token');
  return query !== null && sameToken(query, token);
}

/** A page opened with the right ?token= keeps it as a cookie, for its own later reads. */
function tokenCookie(request: IncomingMessage, token: string, loopback: boolean): Record<string, string> {
  if (loopback) return {};
  const query = new URL(request.url ?? '/', 'http://localhost').searchParams.get('token');
  return query !== null && sameToken(query, token) ? { 'set-cookie': `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/` } : {};
}

/** A request's JSON body (at most 1 MB); no body is undefined. */
function readJson(request: IncomingMessage): Promise<unknown> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > 1 << 20) {
        reject(new UserError('the request body is larger than 1 MB'));
        request.destroy();
      } else chunks.push(chunk);
    });
    request.on('error', reject);
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text.trim()) return resolveBody(undefined);
      try {
        resolveBody(JSON.parse(text));
      } catch (error) {
        reject(new UserError(`the request body is not JSON: ${(error as Error).message}`));
      }
    });
  });
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  send(response, status, 'application/json', `${JSON.stringify(body)}\n`);
}

function send(response: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  response.writeHead(status, {
    ...extra,
    'content-type': type,
    'cache-control': 'no-store',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  response.end(body);
}

/** The runs an API action changed: the one in its path, and the one it made (a new task, a retry). */
function touchedBy(path: string, body: unknown): string[] {
  const ids = [/^\/api\/runs\/([^/]+)\//.exec(path)?.[1], (body as { runId?: unknown } | null)?.runId];
  return [...new Set(ids.filter((id): id is string => typeof id === 'string'))];
}

let css: string | null = null;
/** diff2html's own stylesheet, served by Obra (no CDN). */
function diff2htmlCss(): string {
  css ??= readFileSync(createRequire(import.meta.url).resolve('diff2html/bundles/css/diff2html.min.css'), 'utf8');
  return css;
}
