import { Agent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { UserError } from '../../core/errors.js';
import { QUEUE_KEY, QUEUE_OBJECT, SESSION_OBJECT, TASK_OBJECT } from './model.js';

/**
 * Obra's calls to Restate's ingress (`POST <ingress>/<object>/<key>/<handler>`, JSON in and out) and admin API.
 * Plain HTTP, so the CLI's `status` or `answer` load nothing of the SDK. Every call has a timeout; a refused
 * call (a TerminalError of a handler) is an error with Restate's own words.
 */

export interface RestateUrls {
  ingressUrl: string;
  adminUrl: string;
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
  constructor(
    readonly urls: RestateUrls,
    private readonly timeoutMs = 30_000,
  ) {}

  task<T>(runId: string, handler: string, input?: unknown): Promise<T> {
    return this.call(TASK_OBJECT, runId, handler, input);
  }

  queue<T>(handler: string, input?: unknown): Promise<T> {
    return this.call(QUEUE_OBJECT, QUEUE_KEY, handler, input);
  }

  session<T>(sessionId: string, handler: string, input?: unknown): Promise<T> {
    return this.call(SESSION_OBJECT, sessionId, handler, input);
  }

  async call<T>(object: string, key: string, handler: string, input?: unknown): Promise<T> {
    const counted = `${object}/${handler}`;
    callsMade.set(counted, (callsMade.get(counted) ?? 0) + 1);
    const url = new URL(`${this.urls.ingressUrl.replace(/\/$/, '')}/${object}/${encodeURIComponent(key)}/${handler}`);
    let response: { status: number; text: string };
    try {
      response = await post(url, input === undefined ? '' : JSON.stringify(input), this.timeoutMs);
    } catch (error) {
      throw unreachable('ingress', this.urls.ingressUrl, error);
    }
    const { status, text } = response;
    if (status < 200 || status >= 300) {
      const why = errorText(text) || `HTTP ${status}`;
      if (/service '\w+' not found/.test(why)) throw new RestateCallError(`Obra's services are not registered with Restate at ${this.urls.adminUrl} yet — start \`obra worker\` (it registers them), then try again`, 503);
      throw new RestateCallError(`${object}/${key}/${handler}: ${why}`, status);
    }
    return (text ? JSON.parse(text) : null) as T;
  }

  /** Registers (again, `force`) the deployment at `uri` with the admin API: Restate then sends it the calls. */
  async register(uri: string): Promise<void> {
    let response: Response;
    try {
      response = await fetch(`${this.urls.adminUrl.replace(/\/$/, '')}/deployments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uri, force: true }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw unreachable('admin API', this.urls.adminUrl, error);
    }
    if (!response.ok) {
      // Restate's message quotes the whole response it got from the worker: its first sentence says it.
      const why = (errorText(await response.text()) || `HTTP ${response.status}`).split('. Response headers')[0];
      throw new UserError(`Restate refused to register ${uri}: ${why}`);
    }
  }

  /** The endpoint the services are registered at now (the latest deployment of ObraTask), or null. */
  async registeredUri(): Promise<string | null> {
    const response = await fetch(`${this.urls.adminUrl.replace(/\/$/, '')}/services/${TASK_OBJECT}`, { signal: AbortSignal.timeout(this.timeoutMs) }).catch((error: unknown) => {
      throw unreachable('admin API', this.urls.adminUrl, error);
    });
    if (response.status === 404) return null;
    const service = (await response.json()) as { deployment_id?: string };
    if (!service.deployment_id) return null;
    const deployment = await fetch(`${this.urls.adminUrl.replace(/\/$/, '')}/deployments/${service.deployment_id}`, { signal: AbortSignal.timeout(this.timeoutMs) });
    if (!deployment.ok) return null;
    const body = (await deployment.json()) as { uri?: string };
    return body.uri ?? null;
  }
}

/**
 * A JSON POST on a kept-alive connection. A worker makes several calls an iteration per task: node:http with a
 * keep-alive agent costs a fraction of the CPU of fetch (no web streams, no abort signal per call).
 */
const agents = { 'http:': new Agent({ keepAlive: true, maxSockets: 64 }), 'https:': new HttpsAgent({ keepAlive: true, maxSockets: 64 }) };

function post(url: URL, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send(url, { method: 'POST', agent: agents[url.protocol === 'https:' ? 'https:' : 'http:'], headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs }, (response) => {
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

function unreachable(what: string, url: string, error: unknown): UserError {
  const cause = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
  return new UserError(`cannot reach Restate's ${what} at ${url} (${cause}) — start it with \`obra restate up\`, or set restate.ingress_url / restate.admin_url`);
}
