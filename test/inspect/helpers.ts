import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { configSchema } from '../../src/config/schema.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';

/** A Stately inspection message as it arrives over the wire. */
export interface WireMessage {
  type: '@xstate.actor' | '@xstate.event' | '@xstate.snapshot';
  sessionId: string;
  name?: string;
  parentId?: string;
  rootId?: string;
  definition?: string;
  event?: { type: string; [key: string]: unknown };
  snapshot?: { value?: unknown; status?: string; context?: Record<string, unknown> };
  _version?: string;
}

/** A plain WebSocket client that records every message until the server closes the connection. */
export function listen(url: string): { opened: Promise<void>; closed: Promise<void>; messages: WireMessage[] } {
  const client = new WebSocket(url);
  const messages: WireMessage[] = [];
  client.on('message', (data) => messages.push(JSON.parse(data.toString()) as WireMessage));
  const opened = new Promise<void>((resolve, reject) => {
    client.once('open', () => resolve());
    client.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  return { opened, closed, messages };
}

export const busy = { outcome: { kind: 'sessionBusy' as const, message: 'Error: Session ID s-1 is already in use.' } };

/** Two iterations; the second finds the session busy once and backs off 20 ms. */
export function twoIterationRun() {
  const dir = mkdtempSync(join(tmpdir(), 'obra-inspect-'));
  return {
    dir,
    storeDir: join(dir, 'store'),
    config: configSchema.parse({ agent: { local: { retry_initial_delay: 0.02 } } }),
    agent: new ScriptedAgent([
      'Wrote greet.js with greet(name), returning "Hello, <name>!".\nSTATUS: CONTINUE',
      busy,
      'Documented greet(name) in README.md and checked the example.\nSTATUS: DONE',
    ]),
  };
}

/** The state values an actor went through, with consecutive repeats folded. */
export function valuesOf(messages: WireMessage[], sessionId: string): unknown[] {
  const values: unknown[] = [];
  for (const m of messages) {
    if (m.type !== '@xstate.snapshot' || m.sessionId !== sessionId) continue;
    const value = m.snapshot?.value;
    if (JSON.stringify(values.at(-1)) !== JSON.stringify(value)) values.push(value);
  }
  return values;
}
