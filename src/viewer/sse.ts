import type { ServerResponse } from 'node:http';
import { CONTENT_SECURITY_POLICY } from './page.js';

/**
 * One Server-Sent Events stream to a page: `send` writes an event, a comment every `keepAliveMs` keeps proxies
 * from closing a quiet stream, and `onClose` runs once the page went away (or the server closed it).
 */

export interface EventStream {
  send(event: string, data: unknown, id?: string | number): void;
  onClose(run: () => void): void;
}

const KEEP_ALIVE_MS = 25_000;

export function openEventStream(response: ServerResponse, keepAliveMs = KEEP_ALIVE_MS): EventStream {
  response.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    'x-accel-buffering': 'no',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
  });
  // How long a browser waits before it reconnects a stream that broke.
  response.write('retry: 1000\n\n');
  const keepAlive = setInterval(() => response.write(': keep-alive\n\n'), keepAliveMs);
  keepAlive.unref();
  const closers: (() => void)[] = [() => clearInterval(keepAlive)];
  response.on('close', () => {
    for (const close of closers.splice(0)) close();
  });
  return {
    send(event, data, id) {
      if (response.writableEnded || response.destroyed) return;
      response.write(`${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    onClose(run) {
      if (response.destroyed) run();
      else closers.push(run);
    },
  };
}
