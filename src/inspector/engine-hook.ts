import type { InspectionEvent } from 'xstate';
import { startInspectorServer, type InspectorServer, type InspectorServerOptions } from './server.js';

/** Options of `inspect: { ... }` in `runTask` / `resumeRun` / `answerRun`. */
export interface InspectServerOption extends InspectorServerOptions {
  /**
   * Called once the inspector listens, before the run starts (await a viewer here if you want every event
   * live). The server is closed when the run returns.
   */
  onListening?: (server: InspectorServer) => void | Promise<void>;
}

/**
 * The engine's `inspect` option:
 * - a function receives XState's inspection events (e.g. `@statelyai/inspect`'s `inspector.inspect.next`,
 *   or `server.inspect` of a server you started with `startInspectorServer()` and close yourself);
 * - `true` or `{ port, ... }` starts an inspector server for the duration of the run.
 */
export type InspectOption = ((event: InspectionEvent) => void) | boolean | InspectServerOption;

export interface Inspection {
  inspect: ((event: InspectionEvent) => void) | undefined;
  /** Delivers the last events and stops a server the run started; a no-op otherwise. */
  close(): Promise<void>;
}

/** Resolves the option before anything is written, so a taken port fails the call cleanly. */
export async function openInspection(option: InspectOption | undefined): Promise<Inspection> {
  if (option === undefined || option === false) return { inspect: undefined, close: async () => {} };
  if (typeof option === 'function') return { inspect: option, close: async () => {} };
  const settings = option === true ? {} : option;
  const server = await startInspectorServer(settings);
  try {
    await settings.onListening?.(server);
  } catch (error) {
    await server.close();
    throw error;
  }
  return { inspect: server.inspect, close: () => server.close() };
}
