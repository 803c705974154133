import * as nodeFs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { StoreFs } from '../../src/store/durable-file.js';

/** `fill`: a write of zeros only (a preallocated file growing ahead of its data); `sync`: fdatasync; `fsync`: fsync. */
export type FsOp = 'open' | 'write' | 'fill' | 'sync' | 'fsync' | 'rename' | 'read' | 'truncate' | 'close';

/**
 * The store's file-system seam for tests: every call goes to the real node:fs (so a deleted fdatasync really is
 * missing), and is recorded with the file it touches — or fails, when `fail` says so, the way a full disk or a
 * read-only folder would. `fail` also sees every call (with the text of a write) in order, so a test can keep
 * its own log. File descriptors are mapped back to their paths.
 */
export function recordingFs(fail: (op: FsOp, path: string, text?: string) => NodeJS.ErrnoException | null = () => null) {
  const ops: { op: FsOp; path: string }[] = [];
  const paths = new Map<number, string>();
  const touch = (op: FsOp, path: string, text?: string) => {
    const error = fail(op, path, text);
    if (error) throw error;
    ops.push({ op, path });
  };
  const pathOf = (fd: number) => paths.get(fd) ?? `fd ${fd}`;
  /** fdatasync or fsync in the callback form: recorded, or failed as `fail` says. */
  const flushing = (op: 'sync' | 'fsync', real: (fd: number, cb: (error: NodeJS.ErrnoException | null) => void) => void) => (fd: number, cb: (error: NodeJS.ErrnoException | null) => void) => {
    const error = fail(op, pathOf(fd));
    if (error) return queueMicrotask(() => cb(error));
    ops.push({ op, path: pathOf(fd) });
    real(fd, cb);
  };
  const fs: StoreFs = {
    ...nodeFs,
    openSync: ((path: nodeFs.PathLike, flags?: nodeFs.OpenMode, mode?: nodeFs.Mode) => {
      touch('open', String(path));
      const fd = nodeFs.openSync(path, flags ?? 'r', mode);
      paths.set(fd, String(path));
      return fd;
    }) as typeof nodeFs.openSync,
    closeSync: (fd: number) => {
      ops.push({ op: 'close', path: pathOf(fd) });
      paths.delete(fd);
      nodeFs.closeSync(fd);
    },
    writeSync: ((fd: number, ...rest: unknown[]) => {
      const data = rest[0];
      const zeros = Buffer.isBuffer(data) && data.every((byte) => byte === 0);
      touch(zeros ? 'fill' : 'write', pathOf(fd), typeof data === 'string' ? data : undefined);
      return (nodeFs.writeSync as (...args: unknown[]) => number)(fd, ...rest);
    }) as typeof nodeFs.writeSync,
    fdatasyncSync: (fd: number) => {
      touch('sync', pathOf(fd));
      nodeFs.fdatasyncSync(fd);
    },
    fsyncSync: (fd: number) => {
      touch('fsync', pathOf(fd));
      nodeFs.fsyncSync(fd);
    },
    renameSync: (from: nodeFs.PathLike, to: nodeFs.PathLike) => {
      touch('rename', String(to));
      nodeFs.renameSync(from, to);
    },
    readFileSync: ((path: nodeFs.PathOrFileDescriptor, options?: unknown) => {
      touch('read', String(path));
      return (nodeFs.readFileSync as (...args: unknown[]) => unknown)(path, options);
    }) as typeof nodeFs.readFileSync,
    ftruncateSync: (fd: number, len?: number) => {
      touch('truncate', pathOf(fd));
      nodeFs.ftruncateSync(fd, len);
    },
    // The callback forms (what a drive uses to wait for the disk off the event loop): the same records and faults.
    open: ((path: nodeFs.PathLike, flags: nodeFs.OpenMode, cb: (error: NodeJS.ErrnoException | null, fd: number) => void) => {
      const error = fail('open', String(path));
      if (error) return queueMicrotask(() => cb(error, -1));
      ops.push({ op: 'open', path: String(path) });
      nodeFs.open(path, flags, (err, fd) => {
        if (!err) paths.set(fd, String(path));
        cb(err, fd);
      });
    }) as typeof nodeFs.open,
    close: ((fd: number, cb: (error: NodeJS.ErrnoException | null) => void) => {
      ops.push({ op: 'close', path: pathOf(fd) });
      paths.delete(fd);
      nodeFs.close(fd, cb);
    }) as typeof nodeFs.close,
    write: ((fd: number, text: string, cb: (error: NodeJS.ErrnoException | null, written: number) => void) => {
      const error = fail('write', pathOf(fd), text);
      if (error) return queueMicrotask(() => cb(error, 0));
      ops.push({ op: 'write', path: pathOf(fd) });
      nodeFs.write(fd, text, cb);
    }) as typeof nodeFs.write,
    ftruncate: ((fd: number, len: number, cb: (error: NodeJS.ErrnoException | null) => void) => {
      touch('truncate', pathOf(fd));
      nodeFs.ftruncate(fd, len, cb);
    }) as typeof nodeFs.ftruncate,
    fdatasync: flushing('sync', nodeFs.fdatasync) as typeof nodeFs.fdatasync,
    fsync: flushing('fsync', nodeFs.fsync) as typeof nodeFs.fsync,
    rename: ((from: nodeFs.PathLike, to: nodeFs.PathLike, cb: (error: NodeJS.ErrnoException | null) => void) => {
      const error = fail('rename', String(to));
      if (error) return queueMicrotask(() => cb(error));
      ops.push({ op: 'rename', path: String(to) });
      nodeFs.rename(from, to, cb);
    }) as typeof nodeFs.rename,
  };
  return { fs, ops };
}

/** An error as node:fs throws it (`code` set). */
export const fsError = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: simulated`), { code });

/**
 * Each atomic replacement of `path` seen in `ops`, as its steps in order: the temp file's writes and fdatasync,
 * the rename onto `path`, the fsync of the folder. A durable one reads `['write temp', 'sync temp', 'rename',
 * 'fsync folder']`; a missing sync shows as a missing step (or, for the folder, runs into the next replacement).
 */
export function replacementsOf(ops: { op: FsOp; path: string }[], path: string): string[][] {
  const folder = dirname(path);
  const tempPrefix = join(folder, `.${basename(path)}.`);
  const isTemp = (p: string) => p.startsWith(tempPrefix) && p.endsWith('.tmp');
  const replacements: string[][] = [];
  let current: string[] = [];
  for (const { op, path: at } of ops) {
    if (isTemp(at) && (op === 'write' || op === 'sync')) current.push(`${op} temp`);
    else if (op === 'rename' && at === path) current.push('rename');
    else if (op === 'fsync' && at === folder && current.includes('rename')) {
      current.push('fsync folder');
      replacements.push(current);
      current = [];
    }
  }
  if (current.length) replacements.push(current);
  return replacements;
}
