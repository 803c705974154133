import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Agent } from '../../src/agents/agent.js';
import { CallSlots } from '../../src/agents/call-slots.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { runTask } from '../../src/index.js';
import { tempDir } from '../durability/helpers.js';

/**
 * The store's cap on agent calls in flight (`agent.max_concurrent_calls`, slot files in `<store>/calls/`): a
 * call that fails must give its slot back, or with a cap of 1 the store never makes another call.
 */

const config = configSchema.parse({ agent: { local: { retry_initial_delay: 0.02, max_retries: 2 } } });

describe('call slots', () => {
  it('a call that throws gives its slot back: the store can start the next call at once', async () => {
    const store = tempDir();
    const slots = join(store, 'calls');
    const heldDuringCall: string[][] = [];
    // Not in process: the call takes one of the store's slots before it starts.
    const agent: Agent = {
      name: 'throwing',
      call: async () => {
        heldDuringCall.push(readdirSync(slots));
        throw new Error('spawn claude EMFILE');
      },
    };
    await runTask({ task: 'Build the parser', workdir: store, storeDir: store, agent, config, maxConcurrentCalls: 1 }).catch(() => undefined);
    expect(heldDuringCall).toEqual([['slot-0.lock']]);
    expect(readdirSync(slots)).toEqual([]);
    const next = new CallSlots(slots, 1).tryAcquire();
    expect(next).not.toBeNull();
    next!();
  });

  it('a call that ends in a failure outcome gives its slot back: the next call gets it, with a cap of 1', async () => {
    const store = tempDir();
    const slots = join(store, 'calls');
    const heldDuringCall: string[][] = [];
    const inner = new ScriptedAgent([{ outcome: { kind: 'crashed', message: 'claude exited with signal SIGKILL' } }, 'Wrote the parser and its tests.\nSTATUS: DONE'], { countsAsApiCall: true });
    const agent: Agent = {
      name: 'crashing-once',
      call: (request) => {
        heldDuringCall.push(readdirSync(slots));
        return inner.call(request);
      },
    };
    // A leaked slot would keep the second call waiting for ever: the run is interrupted after 10 s instead.
    const result = await runTask({ task: 'Build the parser', workdir: store, storeDir: store, agent, config, maxConcurrentCalls: 1, signal: AbortSignal.timeout(10_000) });
    expect(result.status).toBe('done');
    expect(result.iterations.map((i) => i.decision)).toEqual(['retry', 'done']);
    expect(heldDuringCall).toEqual([['slot-0.lock'], ['slot-0.lock']]);
    expect(readdirSync(slots)).toEqual([]);
  });
});
