import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load.js';
import { RestateClient } from '../../src/hosts/restate/client.js';
import { freePorts } from '../../src/hosts/restate/server.js';

/** `restate.ingress_url` / `admin_url` as lists, and the client's failover between the nodes (no Restate needed). */

describe('restate.ingress_url and admin_url take a list', () => {
  const urls = (value: unknown) => validateConfig({ restate: { ingress_url: value } }).restate.ingress_url;

  it('one URL, a list, or URLs separated by commas', () => {
    expect(urls('http://10.0.0.1:8080')).toEqual(['http://10.0.0.1:8080']);
    expect(urls(['http://10.0.0.1:8080', 'http://10.0.0.2:8080'])).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.2:8080']);
    expect(urls('http://10.0.0.1:8080, http://10.0.0.2:8080')).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.2:8080']);
    expect(validateConfig({}).restate.admin_url).toEqual(['http://127.0.0.1:9070']);
  });

  it('an empty list or a bad URL is refused with the key', () => {
    expect(() => urls([])).toThrow('config key "restate.ingress_url" (from code): give at least one URL, such as http://127.0.0.1:8080 — got []');
    expect(() => urls(['http://10.0.0.1:8080', 'not a url'])).toThrow('config key "restate.ingress_url.1": expected a URL such as http://127.0.0.1:8080');
  });
});

describe('RestateClient fails over between nodes', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).filter((s) => s.listening).map((s) => new Promise((closed) => s.close(closed))));
  });

  /** An "ingress" that answers every call with the node's name, counting the calls. */
  async function node(name: string): Promise<{ url: string; calls: () => number; server: Server }> {
    let calls = 0;
    const server = createServer((request, response) => {
      calls++;
      request.resume();
      request.on('end', () => response.end(JSON.stringify(name)));
    });
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
    servers.push(server);
    return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, calls: () => calls, server };
  }

  it('a node that refuses is skipped, and the next calls start from the node that answered', async () => {
    const [dead] = (await freePorts(1)) as [number];
    const second = await node('second');
    const third = await node('third');
    const client = new RestateClient({ ingressUrl: [`http://127.0.0.1:${dead}`, second.url, third.url], adminUrl: `http://127.0.0.1:${dead}` });
    expect(await client.task<string>('run-1', 'get')).toBe('second');
    expect(await client.task<string>('run-1', 'get')).toBe('second');
    expect([second.calls(), third.calls()]).toEqual([2, 0]);

    // The second node goes away (its kept-alive connection closed too): the third answers, and then goes on answering.
    await new Promise((closed) => second.server.close(closed));
    expect(await client.task<string>('run-1', 'get')).toBe('third');
    expect(await client.task<string>('run-1', 'get')).toBe('third');
    expect(third.calls()).toBe(2);
  });

  it('when no node answers: one line naming them all', async () => {
    const [a, b] = (await freePorts(2)) as [number, number];
    const client = new RestateClient({ ingressUrl: [`http://127.0.0.1:${a}`, `http://127.0.0.1:${b}`], adminUrl: `http://127.0.0.1:${a}` });
    await expect(client.task('run-1', 'get')).rejects.toThrow(
      `cannot reach Restate's ingress at http://127.0.0.1:${a}, http://127.0.0.1:${b} (ECONNREFUSED) — start it with \`obra restate up\`, or set restate.ingress_url / restate.admin_url`,
    );
  });
});

describe('checking that a worker serves', () => {
  /** An admin API whose registered worker answers discovery while `serving()` says so; counts the requests. */
  async function admin(serving: () => boolean) {
    const requests: string[] = [];
    const server = createServer((request, response) => {
      requests.push(`${request.method} ${request.url}`);
      request.resume();
      request.on('end', () => {
        if (request.url === '/services/ObraTask') return response.end(JSON.stringify({ deployment_id: 'dp_1' }));
        if (request.url === '/deployments/dp_1') return response.end(JSON.stringify({ uri: 'http://127.0.0.1:9/' }));
        response.statusCode = serving() ? 201 : 500;
        response.end('{}');
      });
    });
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
    return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests, close: () => new Promise((closed) => server.close(closed)) };
  }

  it('asks Restate once in 2 s after a worker was seen serving, and every time while none is', async () => {
    let serving = false;
    const a = await admin(() => serving);
    try {
      const client = new RestateClient({ ingressUrl: 'http://127.0.0.1:9', adminUrl: a.url });
      await expect(client.checkServing()).rejects.toThrow(/^Restate is up, but no worker serves Obra's services/);
      await expect(client.checkServing()).rejects.toThrow(/no worker serves/);
      expect(a.requests.filter((r) => r.startsWith('POST /deployments'))).toHaveLength(2);
      serving = true;
      await client.checkServing();
      // Seen serving: another client of the same process, a moment later, does not ask again.
      await new RestateClient({ ingressUrl: 'http://127.0.0.1:9', adminUrl: a.url }).checkServing();
      expect(a.requests.filter((r) => r.startsWith('POST /deployments'))).toHaveLength(3);
      expect(a.requests).toHaveLength(9);
    } finally {
      await a.close();
    }
  });
});
