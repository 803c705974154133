import { execa, type Options, type ResultPromise } from 'execa';
import { processReaper, type Reaper } from './reaper.js';

/**
 * Starts an agent CLI the way every agent implementation must (claude today; codex, gemini... later): in a
 * process group of its own, so a timeout or abort can kill the CLI *and* everything it started
 * (killProcessGroup), and guarded by this process's reaper, so the group dies with this process however it
 * dies (SIGKILL included). When the CLI ends, whatever it left in its group is killed and the group forgotten.
 *
 * `options` are execa's; `detached` is forced on and the reaper's tag added to the environment (with
 * `extendEnv: false`, pass the whole environment in `env`, as usual).
 */
export function spawnAgentProcess<const O extends Options>(file: string, args: readonly string[], options: O, reaper: Reaper = processReaper): ResultPromise<O> {
  // Before the spawn: the child must be born while the reaper already holds the pipe (see Reaper).
  reaper.start();
  // (The same options with two fields set: the result is typed by the caller's options.)
  const subprocess = execa(file, args, { ...options, detached: true, env: { ...options.env, ...reaper.env } }) as unknown as ResultPromise<O>;
  const pgid = subprocess.pid;
  if (pgid) {
    reaper.register(pgid);
    const done = () => {
      // Anything the CLI left running in its group goes too; only then may the reaper forget the group.
      killProcessGroup(pgid, 'SIGKILL');
      reaper.unregister(pgid);
    };
    subprocess.then(done, done);
  }
  return subprocess;
}

/** Signals a whole process group (an agent started by spawnAgentProcess: its pid is its group's id). */
export function killProcessGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  if (!pgid) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is already gone.
  }
}
