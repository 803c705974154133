import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UserError } from '../core/errors.js';
import { portOption } from '../cli/option-parsers.js';

/** Where Obra's local pages listen: this machine only, never the network. */
export const LOCAL_HOST = '127.0.0.1';
/** The Stately inspector relay's port (the Stately tools' default). */
export const DEFAULT_INSPECTOR_PORT = 8080;
/** The offline viewer's port. */
export const DEFAULT_VIEWER_PORT = 7070;

/**
 * Starts `server` on host:port and resolves with the port it got (useful with port 0). A port that is taken
 * or not allowed is a one-line `UserError` that says how to pick another.
 */
export function listenLocally(server: Server, port: number, host: string, what: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') {
        reject(new UserError(`port ${port} is already in use, so the ${what} cannot start on ${host}:${port} — pick a free one with --port <n>`));
      } else if (error.code === 'EACCES') {
        reject(new UserError(`not allowed to listen on port ${port} for the ${what} — pick one above 1023 with --port <n>`));
      } else if (error.code === 'EADDRNOTAVAIL') {
        reject(new UserError(`cannot listen on ${host} for the ${what}: the address is not available on this machine`));
      } else {
        reject(error);
      }
    };
    const onListening = () => {
      server.off('error', onError);
      resolvePort((server.address() as AddressInfo).port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** `--port <n>` of the inspector and the viewer. */
export const parsePort = portOption('--port');

/**
 * Requests must name this server as its host (or come from its own pages): a web page elsewhere cannot read
 * the run's data through DNS rebinding or a cross-site WebSocket.
 */
export function isLocalAuthority(value: string | undefined, port: number): boolean {
  if (!value) return false;
  return [`${LOCAL_HOST}:${port}`, `localhost:${port}`, `[::1]:${port}`].includes(value.replace(/^https?:\/\//, ''));
}
