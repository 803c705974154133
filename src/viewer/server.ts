import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { UserError } from '../core/errors.js';
import { machineGraphs } from '../graph/machine-export.js';
import { DEFAULT_VIEWER_PORT, isLocalAuthority, listenLocally, LOCAL_HOST } from '../inspector/listen.js';
import { RunStore } from '../store/run-store.js';
import { BOARD_COLUMNS, TaskLineReader } from '../queue/board.js';
import { BOARD_CSS, BOARD_JS, boardPage, type BoardData } from './board.js';
import { drawChart } from './chart.js';
import { CONTENT_SECURITY_POLICY, runPage, VIEWER_CSS, VIEWER_JS, type RunListItem } from './page.js';
import { viewerRun } from './run-data.js';

/**
 * `obra view`: a small web server on 127.0.0.1 that shows the tasks of a store on a board and steps through
 * one run over the statecharts drawn from the machine definitions. It reads the store on every request (so reloading
 * the page shows a run that is still going) and never writes to it.
 */

export { DEFAULT_VIEWER_PORT };

export interface ViewerServerOptions {
  storeDir: string;
  port?: number;
  host?: string;
}

export interface ViewerServer {
  /** The page listing the runs. */
  readonly url: string;
  readonly port: number;
  /** The page of one run. */
  runUrl(runId: string): string;
  close(): Promise<void>;
}

export async function startViewerServer(options: ViewerServerOptions): Promise<ViewerServer> {
  const host = options.host ?? LOCAL_HOST;
  // The store must exist before anything is served (a mistyped --db is a UserError, not an empty page).
  const store = RunStore.open(options.storeDir, { create: false });
  const graphs = machineGraphs();
  const charts = { iteration: drawChart(graphs.iteration), task: drawChart(graphs.task) };
  let port = options.port ?? DEFAULT_VIEWER_PORT;

  const http = createServer((request, response) => {
    try {
      route(request, response);
    } catch (error) {
      const status = error instanceof UserError ? 404 : 500;
      send(response, status, 'text/plain; charset=utf-8', `${error instanceof Error ? error.message : String(error)}\n`);
    }
  });

  function route(request: IncomingMessage, response: ServerResponse) {
    if (!isLocalAuthority(request.headers.host, port)) return send(response, 403, 'text/plain', 'Forbidden: open the viewer through 127.0.0.1 or localhost\n');
    if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, 'text/plain', 'Only GET\n');
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://localhost').pathname);
    if (path === '/assets/viewer.css') return send(response, 200, 'text/css; charset=utf-8', VIEWER_CSS + BOARD_CSS);
    if (path === '/assets/viewer.js') return send(response, 200, 'text/javascript; charset=utf-8', VIEWER_JS);
    if (path === '/assets/board.js') return send(response, 200, 'text/javascript; charset=utf-8', BOARD_JS);
    if (path === '/') return send(response, 200, 'text/html; charset=utf-8', boardPage(board()));
    if (path === '/api/board') return send(response, 200, 'application/json', JSON.stringify(board()));
    if (path === '/api/runs') return send(response, 200, 'application/json', JSON.stringify(listRuns()));
    const api = /^\/api\/runs\/([^/]+)$/.exec(path);
    if (api) return send(response, 200, 'application/json', JSON.stringify(runData(api[1]!)));
    const page = /^\/runs\/([^/]+)$/.exec(path);
    if (page) return send(response, 200, 'text/html; charset=utf-8', runPage(page[1]!, charts, runData(page[1]!)));
    return send(response, 404, 'text/plain', 'Not found\n');
  }

  // Every open board asks for the lines each second: only the runs whose files changed are read again.
  const lines = new TaskLineReader(store.dir);
  function board(): BoardData {
    return { storeDir: store.dir, at: new Date().toISOString(), columns: BOARD_COLUMNS, tasks: lines.lines() };
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

  port = await listenLocally(http, port, host, 'viewer');
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    url: `${base}/`,
    port,
    runUrl: (runId) => `${base}/runs/${encodeURIComponent(runId)}`,
    close: () =>
      new Promise<void>((resolveClose) => {
        http.close(() => resolveClose());
        http.closeAllConnections();
      }),
  };
}

function send(response: ServerResponse, status: number, type: string, body: string): void {
  response.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  response.end(body);
}
