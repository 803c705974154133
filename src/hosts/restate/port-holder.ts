import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Who listens on a TCP port of this machine: from the kernel's socket tables (/proc/net/tcp, tcp6) and the
 * processes' open files (/proc/<pid>/fd). Used to say what holds a port `obra restate up` needs, and to check
 * that the server answering its readiness probes is its own and not another one on the same port.
 */

export interface PortHolder {
  pid: number;
  /** The process's command name (/proc/<pid>/comm). */
  name: string;
}

/** Whether `port` can be bound on `host` right now (nothing listens there). */
export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** The inodes of the sockets listening on `port` (any address), from /proc/net/tcp and tcp6; empty without /proc. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      const local = fields[1];
      if (!local || fields[3] !== '0A') continue; // 0A: LISTEN
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(fields[9]!);
    }
  }
  return inodes;
}

/** The process holding a listening socket on `port`, or null when none is known (no /proc, or not ours to read). */
export function portHolder(port: number): PortHolder | null {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return null;
  }
  return holderAmong(port, pids);
}

/** Whether process `pid` holds the listening socket on `port`; null where /proc cannot tell. */
export function portHeldBy(port: number, pid: number): boolean | null {
  if (!existsSync('/proc/net/tcp')) return null;
  return holderAmong(port, [String(pid)])?.pid === pid;
}

function holderAmong(port: number, pids: string[]): PortHolder | null {
  const inodes = listeningInodes(port);
  if (!inodes.size) return null;
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // another user's process, or gone
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode)) return { pid: Number(pid), name: commandName(Number(pid)) };
    }
  }
  return null;
}

function commandName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** "pid 1234 restate-server", or "another process" when it cannot be told. */
export function describeHolder(holder: PortHolder | null): string {
  return holder ? `pid ${holder.pid} ${holder.name}` : 'another process';
}
