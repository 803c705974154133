import { createServer, request, type Server } from 'node:http';

/** One request a worker or the CLI made to Restate's ingress: its path (`/<object>/<key>/<handler>`), its body's size, when. */
export interface MeteredCall {
  path: string;
  bytes: number;
  at: number;
  /** Whether it carried iteration records (a drive's records ride on its next append, or its settle). */
  records: boolean;
}

/**
 * A pass-through proxy in front of Restate's ingress that records every request: what Obra sends to Restate,
 * measured on the wire (the benchmark and the storage tests point workers at it).
 */
export interface IngressMeter {
  url: string;
  calls: MeteredCall[];
  close(): Promise<void>;
}

export async function startIngressMeter(ingressUrl: string): Promise<IngressMeter> {
  const target = new URL(ingressUrl);
  const calls: MeteredCall[] = [];
  const server: Server = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const body = Buffer.concat(chunks);
      calls.push({ path: incoming.url ?? '', bytes: body.length, at: Date.now(), records: body.includes('"records":[{') });
      const forward = request({ host: target.hostname, port: target.port, path: incoming.url, method: incoming.method, headers: { ...incoming.headers, host: target.host } }, (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
      });
      forward.on('error', () => outgoing.destroy());
      // The caller gave up (a stopping worker's wait): so does the request it made.
      outgoing.once('close', () => {
        if (!outgoing.writableFinished) forward.destroy();
      });
      forward.end(body);
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
