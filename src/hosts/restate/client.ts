import { Agent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { UserError } from '../../core/errors.js';
import { QUEUE_KEY, QUEUE_OBJECT, RACE_OBJECT, SESSION_OBJECT, TASK_OBJECT, type RaceDecided } from './model.js';

/**
 * Obra's calls to Restate's ingress (`POST <ingress>/<object>/<key>/<handler>`, JSON in and out) and admin API.
 * Plain HTTP, so the CLI's `status` or `answer` load nothing of the SDK. Every call has a timeout; a refused
 * call (a TerminalError of a handler) is an error with Restate's own words. Given several nodes of a cluster, a
 * call that cannot reach one goes to the next (and later calls start from the one that answered).
 */

export interface RestateUrls {
  /** One node's URL, or a cluster's nodes in the order to try them. */
  ingressUrl: string | readonly string[];
  adminUrl: string | readonly string[];
}

/** The URLs of one or several nodes, as a list without trailing slashes. */
export function urlList(urls: string | readonly string[]): string[] {
  return (typeof urls === 'string' ? [urls] : [...urls]).map((url) => url.replace(/\/$/, ''));
}

/** The node URLs as a message names them. */
export const urlsText = (urls: string | readonly string[]) => urlList(urls).join(', ');

/** When a worker was last seen serving, by admin URLs: a check within this long of it is not made again. */
const servingSeenAt = new Map<string, number>();
const SERVING_SEEN_MS = 2_000;

/**
 * Errors that say the node is not there (refused, reset, unreachable, silent): the call goes to the next node.
 * Calls a node did take are fenced (epochs, run ids), so one that reached a node before it died and is sent
 * again to another does no harm.
 */
const NODE_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'TimeoutError']);

const errorCode = (error: unknown) => (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;

/** A cluster's nodes for one API: calls go to the last node that answered, and to the next ones when it is down. */
class Nodes {
  private current = 0;
  readonly list: string[];

  constructor(
    urls: string | readonly string[],
    private readonly what: string,
  ) {
    this.list = urlList(urls);
  }

  async call<T>(send: (url: string) => Promise<T>): Promise<T> {
    const causes: string[] = [];
    for (let tried = 0; tried < this.list.length; tried++) {
      const at = (this.current + tried) % this.list.length;
      try {
        const result = await send(this.list[at]!);
        this.current = at;
        return result;
      } catch (error) {
        if (!NODE_DOWN.has(errorCode(error))) throw error;
        causes.push(errorCode(error));
      }
    }
    throw unreachable(this.what, this.list, [...new Set(causes)].join(', '));
  }
}

export interface CallOptions {
  /** Restate runs calls with the same key once (a call sent again to another node is the same call), and withdraw() finds it. */
  idempotencyKey?: string;
  timeoutMs?: number;
}

/** A call Restate or a handler refused: Restate's own words, and its HTTP status (404 unknown, 409 refused...). */
export class RestateCallError extends UserError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message, 1);
  }
}

/** The calls this process made to the ingress, by `<object>/<handler>` (what a worker costs Restate; benchmarks). */
export const callsMade = new Map<string, number>();

export class RestateClient {
  private readonly ingress: Nodes;
  private readonly admin: Nodes;

  constructor(
    readonly urls: RestateUrls,
    private readonly timeoutMs = 30_000,
  ) {
    this.ingress = new Nodes(urls.ingressUrl, 'ingress');
    this.admin = new Nodes(urls.adminUrl, 'admin API');
  }

  /** Runs `send` with an ingress node's URL (the next nodes when it is down): a request the client does not make itself. */
  viaIngress<T>(send: (url: string) => Promise<T>): Promise<T> {
    return this.ingress.call(send);
  }

  task<T>(runId: string, handler: string, input?: unknown, options?: CallOptions): Promise<T> {
    return this.call(TASK_OBJECT, runId, handler, input, options);
  }

  queue<T>(handler: string, input?: unknown): Promise<T> {
    return this.call(QUEUE_OBJECT, QUEUE_KEY, handler, input);
  }

  session<T>(sessionId: string, handler: string, input?: unknown): Promise<T> {
    return this.call(SESSION_OBJECT, sessionId, handler, input);
  }

  /** A race's decision: the one kept, or made now if every attempt has ended (null while one has not). */
  decideRace(raceId: string): Promise<RaceDecided> {
    return this.call(RACE_OBJECT, raceId, 'decide', {});
  }

  async call<T>(object: string, key: string, handler: string, input?: unknown, options: CallOptions = {}): Promise<T> {
    const counted = `${object}/${handler}`;
    callsMade.set(counted, (callsMade.get(counted) ?? 0) + 1);
    const path = `/${object}/${encodeURIComponent(key)}/${handler}`;
    const body = input === undefined ? '' : JSON.stringify(input);
    const { status, text } = await this.ingress.call((ingress) => post(new URL(`${ingress}${path}`), body, options.timeoutMs ?? this.timeoutMs, options.idempotencyKey));
    if (status < 200 || status >= 300) {
      const why = errorText(text) || `HTTP ${status}`;
      if (/service '\w+' not found/.test(why)) throw new RestateCallError(`Obra's services are not registered with Restate at ${urlsText(this.urls.adminUrl)} yet — start \`obra worker\` (it registers them), then try again`, 503);
      throw new RestateCallError(`${object}/${key}/${handler}: ${why}`, status);
    }
    return (text ? JSON.parse(text) : null) as T;
  }

  /** Registers (again, `force`) the deployment at `uri` with the admin API: Restate then sends it the calls. */
  async register(uri: string): Promise<void> {
    const response = await this.adminFetch('/deployments', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ uri, force: true }) });
    if (!response.ok) {
      // Restate's message quotes the whole response it got from the worker: its first sentence says it.
      const why = (errorText(await response.text()) || `HTTP ${response.status}`).split('. Response headers')[0];
      throw new UserError(`Restate refused to register ${uri}: ${why}`);
    }
  }

  /** The endpoint the services are registered at now (the latest deployment of ObraTask), or null. */
  async registeredUri(): Promise<string | null> {
    const response = await this.adminFetch(`/services/${TASK_OBJECT}`);
    if (response.status === 404) return null;
    const service = (await response.json()) as { deployment_id?: string };
    if (!service.deployment_id) return null;
    const deployment = await this.adminFetch(`/deployments/${service.deployment_id}`);
    if (!deployment.ok) return null;
    const body = (await deployment.json()) as { uri?: string };
    return body.uri ?? null;
  }

  /**
   * Checks that the ingress and admin URLs lead to Restate: each answers (on one of its nodes) as Restate's
   * ingress or admin API does. A worker checks them before it registers anything; a wrong URL is one line.
   */
  async checkUrls(timeoutMs = 5_000): Promise<void> {
    const admin = await this.admin.call(async (url) => ({ url, response: await fetch(`${url}/version`, { signal: AbortSignal.timeout(timeoutMs) }) }));
    const version = (await admin.response.json().catch(() => null)) as { max_admin_api_version?: number } | null;
    if (!admin.response.ok || typeof version?.max_admin_api_version !== 'number') {
      throw new UserError(`restate.admin_url ${admin.url} answers, but not as Restate's admin API (GET /version: HTTP ${admin.response.status}) — point it at the admin port of a Restate server (9070 by default)`);
    }
    const ingress = await this.ingress.call(async (url) => ({ url, response: await fetch(`${url}/restate/health`, { signal: AbortSignal.timeout(timeoutMs) }) }));
    const health = (await ingress.response.json().catch(() => null)) as { services?: unknown } | null;
    if (!ingress.response.ok || !Array.isArray(health?.services)) {
      throw new UserError(`restate.ingress_url ${ingress.url} answers, but not as Restate's ingress (GET /restate/health: HTTP ${ingress.response.status}) — point it at the ingress port of a Restate server (8080 by default)`);
    }
  }

  /**
   * Checks that a worker serves Obra's services: they are registered, and Restate can reach the worker they
   * are registered at (a discovery that registers nothing). Without one, a call would wait in Restate, retried
   * until a worker comes, and be applied then, long after the command had given up.
   */
  async checkServing(timeoutMs = 10_000): Promise<void> {
    // A process that submits again and again (obra mcp, the board's API) asks Restate once in a while, not each time.
    const key = urlsText(this.urls.adminUrl);
    if (performance.now() - (servingSeenAt.get(key) ?? -Infinity) < SERVING_SEEN_MS) return;
    const uri = await this.registeredUri();
    if (uri === null) throw new RestateCallError(`Obra's services are not registered with Restate at ${urlsText(this.urls.adminUrl)} yet — start \`obra worker\` (it registers them), then try again`, 503);
    const discovered = await this.adminFetch('/deployments', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ uri, force: true, dry_run: true }) }, timeoutMs).catch((error: unknown) => {
      if (error instanceof RestateUnreachable) throw error;
      return null; // no answer within the time: as good as none
    });
    if (!discovered?.ok) throw new NoWorkerServing(`Restate is up, but no worker serves Obra's services: the worker registered at ${uri} does not answer — start \`obra worker\` (it registers itself), then try again`);
    servingSeenAt.set(key, performance.now());
  }

  /**
   * Takes back a call sent with `idempotencyKey` that has not run to its end (no worker took it): killed, it is
   * never applied. Returns whether one was taken back.
   */
  async withdraw(idempotencyKey: string): Promise<boolean> {
    const query = `SELECT id, status FROM sys_invocation WHERE idempotency_key = '${idempotencyKey.replace(/'/g, "''")}'`;
    const found = await this.adminFetch('/query', { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ query }) }, 5_000);
    const rows = found.ok ? ((await found.json()) as { rows?: { id: string; status: string }[] }).rows ?? [] : [];
    let withdrawn = false;
    for (const row of rows.filter((r) => r.status !== 'completed')) {
      const killed = await this.adminFetch(`/invocations/${encodeURIComponent(row.id)}/kill`, { method: 'PATCH' }, 5_000);
      withdrawn ||= killed.ok;
    }
    return withdrawn;
  }

  /** The ingress nodes that do not answer now (of a cluster whose other nodes do). */
  async nodesDown(timeoutMs = 2_000): Promise<{ url: string; cause: string }[]> {
    if (this.ingress.list.length < 2) return [];
    const probes = await Promise.all(
      this.ingress.list.map((url) =>
        fetch(`${url}/restate/health`, { signal: AbortSignal.timeout(timeoutMs) }).then(
          (response) => (response.ok ? null : { url, cause: `HTTP ${response.status}` }),
          (error: unknown) => ({ url, cause: errorCode(error) }),
        ),
      ),
    );
    return probes.filter((probe) => probe !== null);
  }

  /** A request to the admin API, on the first node that answers. */
  adminFetch(path: string, init: RequestInit = {}, timeoutMs = this.timeoutMs): Promise<Response> {
    return this.admin.call((admin) => fetch(`${admin}${path}`, { ...init, signal: AbortSignal.timeout(timeoutMs) }));
  }
}

/**
 * A JSON POST on a kept-alive connection. A worker makes several calls an iteration per task: node:http with a
 * keep-alive agent costs a fraction of the CPU of fetch (no web streams, no abort signal per call).
 */
const agents = { 'http:': new Agent({ keepAlive: true, maxSockets: 64 }), 'https:': new HttpsAgent({ keepAlive: true, maxSockets: 64 }) };

function post(url: URL, body: string, timeoutMs: number, idempotencyKey?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, { method: 'POST', agent: agents[url.protocol === 'https:' ? 'https:' : 'http:'], headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) }, timeout: timeoutMs }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    request.on('error', reject);
    request.end(body);
  });
}

function errorText(text: string): string {
  try {
    const json = JSON.parse(text) as { message?: string };
    return json.message ?? text;
  } catch {
    return text.trim();
  }
}

/** The server is up, but the worker its calls would go to is not. */
export class NoWorkerServing extends RestateCallError {
  constructor(message: string) {
    super(message, 503);
  }
}

/** Every node of an API failed to answer. */
export class RestateUnreachable extends UserError {
  constructor(
    message: string,
    readonly what: string,
  ) {
    super(message);
  }
}

function unreachable(what: string, urls: string[], cause: string): RestateUnreachable {
  return new RestateUnreachable(`cannot reach Restate's ${what} at ${urls.join(', ')} (${cause}) — start it with \`obra restate up\`, or set restate.ingress_url / restate.admin_url`, what);
}
