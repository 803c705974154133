import { readdirSync, readFileSync } from 'node:fs';

/** A small seeded generator (mulberry32): a soak's random moments can be played again with its seed. */
export function seeded(seed: number): () => number {
  console.log(`soak seed ${seed} (OBRA_SOAK_SEED=${seed} plays it again)`);
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The pids of fake-claude processes (and their children) running with this HOME: the agents of one sandbox. */
export function agentProcessesOf(home: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const environ = readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (!environ.includes(`HOME=${home}`)) continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      // A zombie is dead already (its parent has not reaped it yet).
      const state = readFileSync(`/proc/${name}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmdline.includes('fake-claude') && state !== 'Z') found.push(Number(name));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/** The agent processes of this HOME still alive `withinMs` after their worker died (none, once they are gone). */
export async function agentsLeftAfter(home: string, withinMs: number): Promise<number[]> {
  const deadline = Date.now() + withinMs;
  while (agentProcessesOf(home).length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  return agentProcessesOf(home);
}
