import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { InspectionEvent } from 'xstate';
import { WebSocket, WebSocketServer } from 'ws';
import { bridgePage } from './bridge-page.js';
import { DEFAULT_INSPECTOR_PORT, isLocalAuthority, listenLocally, LOCAL_HOST } from './listen.js';
import { liveConverter, type StatelyMessage } from './live.js';

/**
 * The inspector relay: an HTTP + WebSocket server on 127.0.0.1 that passes a run's inspection events to every
 * connected page. It speaks the protocol of `@statelyai/inspect/server` (each message is one Stately
 * inspection event as JSON; whatever a client sends goes to all the others), so the bridge page below, a
 * `createWebSocketReceiver()` or a test's plain WebSocket can all listen, and `createWebSocketInspector()` from
 * another process can publish into it.
 *
 * Unlike that server it listens on the loopback address only (a run's prompts and answers are not for the
 * network), reports a taken port as a clear error instead of crashing, and keeps the whole run (not the last
 * 200 events) so a page opened late still sees it from the start.
 */

export { DEFAULT_INSPECTOR_PORT };
/** The Stately inspector UI the bridge page embeds. */
export const STATELY_INSPECTOR_URL = 'https://stately.ai/inspect';

export interface InspectorServerOptions {
  /** Default 8080 (the Stately tools' default); 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The inspector UI the page at `/` embeds. */
  inspectorUrl?: string;
  /** How many events to keep for pages that connect late (actor registrations are always kept). */
  maxBuffered?: number;
}

export interface InspectorServer {
  /** The page to open in a browser. */
  readonly url: string;
  /** Where WebSocket clients connect. */
  readonly wsUrl: string;
  readonly port: number;
  /** Pass to XState (`createActor(machine, { inspect: server.inspect })`) or to Obra (`inspect: server.inspect`). */
  readonly inspect: (event: InspectionEvent) => void;
  /** Sends one Stately inspection event to every page, and keeps it for pages that connect later. */
  publish(message: StatelyMessage): void;
  /** How many pages (WebSocket clients) are connected now. */
  viewers(): number;
  /** Resolves once at least one page is connected. */
  waitForViewer(signal?: AbortSignal): Promise<void>;
  /** Delivers what is still queued, closes every connection (after its pending messages) and the server. */
  close(): Promise<void>;
}

export async function startInspectorServer(options: InspectorServerOptions = {}): Promise<InspectorServer> {
  const host = options.host ?? LOCAL_HOST;
  const maxBuffered = options.maxBuffered ?? 50_000;
  const inspectorUrl = options.inspectorUrl ?? STATELY_INSPECTOR_URL;
  let port = options.port ?? DEFAULT_INSPECTOR_PORT;
  const buffer: string[] = [];
  let actorCount = 0;
  const viewerWaiters = new Set<() => void>();

  const http = createServer((request: IncomingMessage, response: ServerResponse) => {
    if (!isLocalAuthority(request.headers.host, port)) {
      response.writeHead(403, { 'content-type': 'text/plain' }).end('Forbidden: open this page through 127.0.0.1 or localhost\n');
      return;
    }
    if (request.method !== 'GET' || (request.url ?? '/').split('?')[0] !== '/') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      return;
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(bridgePage(inspectorUrl));
  });
  const sockets = new WebSocketServer({ noServer: true });
  http.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Browsers always send Origin: only this server's own page may connect. Node clients send none.
    const origin = request.headers.origin;
    if (!isLocalAuthority(request.headers.host, port) || (origin !== undefined && !isLocalAuthority(origin, port))) {
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    sockets.handleUpgrade(request, socket, head, (client) => sockets.emit('connection', client, request));
  });

  const remember = (text: string, isActor: boolean) => {
    buffer.push(text);
    if (isActor) actorCount += 1;
    // Over the limit: drop the oldest events but never an actor registration (pages need them to draw).
    if (buffer.length - actorCount > maxBuffered) {
      const index = buffer.findIndex((m) => !m.includes('"type":"@xstate.actor"'));
      if (index >= 0) buffer.splice(index, 1);
    }
  };
  const broadcast = (text: string, except?: WebSocket) => {
    for (const client of sockets.clients) if (client !== except && client.readyState === WebSocket.OPEN) client.send(text);
  };

  sockets.on('connection', (client: WebSocket) => {
    for (const text of buffer) client.send(text);
    client.on('message', (data) => {
      const text = data.toString();
      remember(text, text.includes('"type":"@xstate.actor"'));
      broadcast(text, client);
    });
    client.on('error', () => client.terminate());
    for (const wake of viewerWaiters) wake();
    viewerWaiters.clear();
  });

  port = await listenLocally(http, port, host, 'inspector');
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;

  const publish = (message: StatelyMessage) => {
    const text = serialize(message);
    remember(text, message.type === '@xstate.actor');
    broadcast(text);
  };
  const live = liveConverter(publish);

  return {
    url: `http://${authority}/`,
    wsUrl: `ws://${authority}`,
    port,
    inspect: live.inspect,
    publish,
    viewers: () => sockets.clients.size,
    waitForViewer(signal) {
      if (sockets.clients.size > 0) return Promise.resolve();
      return new Promise<void>((resolveWait, reject) => {
        const wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolveWait();
        };
        const onAbort = () => {
          viewerWaiters.delete(wake);
          reject(signal?.reason ?? new Error('aborted'));
        };
        viewerWaiters.add(wake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    async close() {
      await live.flush();
      const closing = [...sockets.clients].map(
        (client) =>
          new Promise<void>((done) => {
            if (client.readyState === WebSocket.CLOSED) return done();
            client.once('close', () => done());
            // A close frame goes out after the messages already queued; a client that never answers is cut off.
            client.close(1001, 'inspection finished');
            setTimeout(() => (client.terminate(), done()), 2000).unref();
          }),
      );
      await Promise.all(closing);
      sockets.close();
      await new Promise<void>((done) => http.close(() => done()));
    },
  };
}

/** JSON of an inspection event; a value JSON cannot hold (a cycle) is replaced, never fatal for the run. */
function serialize(message: StatelyMessage): string {
  try {
    return JSON.stringify(message);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(message, (_key, value: unknown) => {
      if (typeof value === 'bigint') return value.toString();
      if (value && typeof value === 'object') {
        if (seen.has(value)) return '[circular]';
        seen.add(value);
      }
      return value;
    });
  }
}
