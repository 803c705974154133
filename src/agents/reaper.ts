import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/**
 * The variable every agent process is started with: `<owner pid>-<random>`, one value per reaper. It is
 * inherited by everything the agent starts, so the reaper finds the whole tree by it, even a process that left
 * the agent's process group (setsid) or was started in the instant before its group was registered.
 */
export const OWNER_VARIABLE = 'OBRA_AGENT_OWNER';

/**
 * The reaper itself: reads `+<pgid>` / `-<pgid>` lines on stdin; at end of input (the Obra process died, however:
 * its end of the pipe is closed by the kernel) it SIGKILLs every group still registered, then every process whose
 * environment holds the owner tag, and exits. Plain JavaScript for `node -e`, so it runs the same from dist/ and
 * from the TypeScript sources under test.
 */
const REAPER_SOURCE = `
const { readdirSync, readFileSync } = require('node:fs');
const tag = process.argv[1];
const groups = new Set();
let pending = '';
process.stdin.on('data', (chunk) => {
  const lines = (pending + chunk).split('\\n');
  pending = lines.pop();
  for (const line of lines) {
    const pgid = Number(line.slice(1));
    if (!(pgid > 1)) continue;
    if (line[0] === '+') groups.add(pgid); else groups.delete(pgid);
  }
});
const kill = (pid) => { try { process.kill(pid, 'SIGKILL'); return true; } catch { return false; } };
const tagged = () => {
  const found = [];
  let names = [];
  try { names = readdirSync('/proc'); } catch {} // no /proc (macOS): the registered groups are all it can kill
  for (const name of names) {
    if (!/^[0-9]+$/.test(name) || Number(name) === process.pid) continue;
    try { if (readFileSync('/proc/' + name + '/environ', 'latin1').split('\\0').includes(tag)) found.push(Number(name)); } catch {}
  }
  return found;
};
process.stdin.on('close', () => {
  for (const pgid of groups) kill(-pgid);
  // A few rounds: a tagged process may have forked while the previous round was reading /proc.
  for (let round = 0; round < 5; round++) if (!tagged().filter(kill).length) break;
  process.exit(0);
});
`;

/**
 * One reaper per Obra process, started at its first agent call: a tiny child in a process group of its own (so
 * a signal to Obra's group does not take it along) holding the read end of a pipe whose only writer is Obra.
 * When Obra dies — SIGKILL and OOM kill included, which no handler in Obra can see — the kernel closes the pipe
 * and the reaper kills the agent processes Obra left: their registered process groups, and every process
 * tagged with this reaper's OWNER_VARIABLE.
 *
 * The tag closes the race between spawning an agent and registering its group: the child holds Obra's end of
 * the pipe (close-on-exec) until it has exec'd with the tag in its environment, so the reaper's sweep, which
 * starts only once every copy of that end is closed, always sees it. `setpriv --pdeathsig KILL` was not enough
 * on its own: it reaches the CLI, not the processes the CLI starts, and does not exist off Linux. A node child
 * (not a shell script) keeps to the project's rule that only user checks go through a shell; it costs one idle
 * process per Obra process (about 7 MB of its own memory).
 */
export class Reaper {
  private child: ChildProcess | null = null;
  /** The groups alive now, given again to a reaper started after the previous one died. */
  private readonly groups = new Set<number>();
  readonly tag = `${OWNER_VARIABLE}=${process.pid}-${randomBytes(6).toString('hex')}`;

  /** The variable to add to an agent's environment. */
  get env(): Record<string, string> {
    return { [OWNER_VARIABLE]: this.tag.slice(OWNER_VARIABLE.length + 1) };
  }

  /** The reaper process running now, if any (tests look at it). */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Called right after an agent's process group is spawned: the reaper kills it if this process dies first. */
  register(pgid: number): void {
    this.groups.add(pgid);
    this.send(`+${pgid}\n`);
  }

  /** Called once the group was killed or has ended by itself. */
  unregister(pgid: number): void {
    // A reaper started after the group's end does not know it: no need to start one just to say so.
    if (this.groups.delete(pgid) && this.child) this.send(`-${pgid}\n`);
  }

  private send(line: string): void {
    const stdin = this.start()?.stdin;
    // A pipe write with an empty queue is a synchronous write(2): the line is in the kernel when this returns.
    if (stdin && !stdin.destroyed) stdin.write(line);
  }

  /**
   * Starts the reaper if it does not run: called *before* an agent is spawned, so that the agent's fork holds the
   * pipe until its exec (see above).
   */
  start(): ChildProcess | null {
    if (this.child) return this.child;
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, ['--max-old-space-size=16', '-e', REAPER_SOURCE, this.tag], {
        detached: true,
        // No environment of Obra's: NODE_OPTIONS (an --inspect, a loader) must not reach it, nor the tag.
        env: {},
        stdio: ['pipe', 'ignore', 'ignore'],
      });
    } catch {
      return null; // no reaper (EAGAIN...): calls still run, they are only not guarded against Obra's death
    }
    this.child = child;
    // Once it has died (or could not start), the next call starts another.
    const gone = () => {
      if (this.child === child) this.child = null;
    };
    child.on('error', gone);
    child.on('exit', gone);
    child.stdin?.on('error', () => {}); // EPIPE once it died
    // It must never keep Obra alive.
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    if (this.groups.size && child.stdin) child.stdin.write([...this.groups].map((g) => `+${g}\n`).join(''));
    return child;
  }
}

/** The reaper of this process, shared by every agent implementation (through spawnAgentProcess). */
export const processReaper = new Reaper();
