import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { execa, type ResultPromise } from 'execa';
import { CLI } from '../helpers/cli.js';

/** `obra view` started as the user would, and the URL (with its token) it prints. */
export async function startView(args: string[], options: { cwd: string; env: Record<string, string> }) {
  const child = execa('node', [CLI, 'view', '--port', '0', ...args], { cwd: options.cwd, env: options.env, reject: false, timeout: 120_000 });
  let stderr = '';
  const printed = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /Viewer: (http:\/\/\S+) /.exec(stderr);
      if (match) resolve(match[1]!);
    });
    void child.then(() => reject(new Error(`obra view ended early:\n${stderr}`)));
  });
  const url = new URL(printed);
  return {
    child: child as ResultPromise,
    printed,
    base: url.origin,
    token: url.searchParams.get('token')!,
    stderr: () => stderr,
    async stop() {
      child.kill('SIGINT');
      return child;
    },
  };
}

/** A JSON request to the API, with the token unless `headers` says otherwise. */
export async function api(base: string, token: string | null, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> & { error?: string } };
}

/** What a webhook receives. */
export interface Received {
  event: string;
  runId: string;
  task: string;
  status: string;
  reason: string;
  link: string;
  at: string;
}

/** A webhook receiver: `answer(n)` is the status of the n-th POST (null: never answer). */
export async function receiver(answer: (n: number) => number | null) {
  const bodies: Received[] = [];
  const sockets = new Set<Socket>();
  let n = 0;
  const server: Server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => {
      const status = answer(++n);
      // null: never answer (a receiver that hangs).
      if (status === null) return;
      if (status < 300) bodies.push(JSON.parse(text) as Received);
      response.writeHead(status).end();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    requests: () => n,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export { openStream, type Sent } from '../../fixtures/sse-stream.js';
