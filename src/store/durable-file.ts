import * as nodeFs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { SyncAdapter } from 'lowdb';
import type { z } from 'zod';
import { UserError } from '../core/errors.js';

/**
 * The store's file primitives. Two kinds of file, both safe against SIGKILL and power loss:
 * - small JSON files replaced whole (lowdb adapter): temp file, fdatasync, rename, fsync of the folder — a
 *   reader sees the old file or the new one, never half of one (lowdb's own JSONFile renames but never syncs);
 * - append-only JSON-lines logs: a line is one write(); `sync()` fdatasyncs; a line cut short by a crash
 *   (never acknowledged) is ignored by readers and cut off before the next append.
 * Every failure names the file and says what to do; a failed write never touches the previous content.
 */

/**
 * The file-system calls the store makes — the files host's seam: node:fs by default; a test passes a wrapper
 * that records the real calls (to see every fdatasync where it happens) or fails some (a full disk, a
 * read-only folder), and the store cannot tell.
 */
export type StoreFs = Pick<
  typeof nodeFs,
  | 'openSync' | 'closeSync' | 'writeSync' | 'fdatasyncSync' | 'fsyncSync' | 'ftruncateSync' | 'fstatSync' | 'readSync' | 'readFileSync' | 'renameSync' | 'rmSync'
  // The callback forms, for the writes a drive makes while other tasks go on (their waits leave the event loop).
  | 'open' | 'close' | 'write' | 'fdatasync' | 'fsync' | 'rename' | 'ftruncate'
>;

export const defaultStoreFs: StoreFs = nodeFs;

/** A failed store I/O as a one-line message that names the file, the cause and the way out. */
export function storeIoError(error: unknown, path: string, doing: string): Error {
  if (error instanceof UserError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOSPC' || code === 'EDQUOT' ? 'the disk is full (or the quota is used up) — free some space'
    : code === 'EROFS' ? 'the file system is read-only — point --db at a writable folder'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied — point --db at a folder you can write to, or fix its permissions'
    : code === 'ENOENT' ? 'the folder is gone (was the store moved or deleted?)'
    : `${code ?? 'error'}: ${(error as Error).message}`;
  return new UserError(`cannot ${doing} ${path}: ${why}`);
}

export const isNotFound = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT';

/** A lowdb adapter: reads are validated with zod (a bad file is named), writes are atomic and durable. */
export class DurableJsonFile<T> implements SyncAdapter<T> {
  constructor(
    readonly path: string,
    private readonly schema: z.ZodType<T>,
    /** Extra advice for a file that does not match the schema (e.g. an older store version). */
    private readonly explain?: (json: unknown) => string | null,
    private readonly fs: StoreFs = defaultStoreFs,
  ) {}

  read(): T | null {
    let text: string;
    try {
      text = this.fs.readFileSync(this.path, 'utf8');
    } catch (error) {
      if (isNotFound(error)) return null;
      throw storeIoError(error, this.path, 'read');
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      const what = text.trim() === '' ? 'is empty' : 'is not valid JSON';
      throw new UserError(`${this.path} ${what} (truncated or edited by hand?); it was left untouched — restore it from a backup or delete that run's folder`);
    }
    const advice = this.explain?.(json);
    if (advice) throw new UserError(`${this.path}: ${advice}; it was left untouched`);
    const parsed = this.schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UserError(`${this.path} is not an Obra file of the expected format (${issue?.path.join('.') || 'the top level'}: ${issue?.message}); it was left untouched`);
    }
    return parsed.data;
  }

  write(data: T): void {
    writeFileDurably(this.path, JSON.stringify(data), this.fs);
  }

  /** `write`, waiting for the disk off the event loop. */
  writeInBackground(data: T): Promise<void> {
    return writeFileDurablyAsync(this.path, JSON.stringify(data), this.fs);
  }
}

/** Replaces `path` atomically and durably; on failure the old file is intact and the temp file removed. */
export function writeFileDurably(path: string, text: string, fs: StoreFs = defaultStoreFs): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = fs.openSync(temp, 'w');
    try {
      fs.writeSync(fd, text);
      fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, path);
    syncDirectory(dirname(path), fs);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw storeIoError(error, path, 'write');
  }
}

/**
 * `writeFileDurably` off the event loop: the same steps, each in libuv's thread pool, so a process driving many
 * tasks goes on with the others while this file's data and folder are flushed.
 */
export async function writeFileDurablyAsync(path: string, text: string, fs: StoreFs = defaultStoreFs): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const call = callbacks(fs);
  try {
    const fd = await call.open(temp, 'w');
    try {
      await call.write(fd, text);
      await call.fdatasync(fd);
    } finally {
      await call.close(fd);
    }
    await call.rename(temp, path);
    const dirFd = await call.open(dirname(path), 'r');
    try {
      await call.fsync(dirFd);
    } finally {
      await call.close(dirFd);
    }
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw storeIoError(error, path, 'write');
  }
}

/** The seam's callback calls as promises. */
function callbacks(fs: StoreFs) {
  const done = <T>(run: (cb: (error: NodeJS.ErrnoException | null, value?: T) => void) => void) =>
    new Promise<T>((resolve, reject) => run((error, value) => (error ? reject(error) : resolve(value as T))));
  return {
    open: (path: string, flags: string | number) => done<number>((cb) => fs.open(path, flags, cb)),
    write: (fd: number, text: string) => done<number>((cb) => fs.write(fd, text, cb)),
    fdatasync: (fd: number) => done<void>((cb) => fs.fdatasync(fd, cb)),
    fsync: (fd: number) => done<void>((cb) => fs.fsync(fd, cb)),
    close: (fd: number) => done<void>((cb) => fs.close(fd, cb)),
    ftruncate: (fd: number, length: number) => done<void>((cb) => fs.ftruncate(fd, length, cb)),
    rename: (from: string, to: string) => done<void>((cb) => fs.rename(from, to, cb)),
  };
}

export function syncDirectory(dir: string, fs: StoreFs = defaultStoreFs): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Where a journal's lines go: an AppendLog (a file) on this machine, or another host's own storage. `write` hands
 * lines over so that a crash of this process cannot lose them; `sync` / `syncInBackground` make them durable.
 */
export interface LineLog {
  write(text: string): void;
  sync(): boolean;
  syncInBackground(): Promise<boolean>;
  close(): void;
  /** `close`, waiting for the disk off the event loop where that matters. */
  closeInBackground?(): Promise<void>;
  readLines(): { text: string; number: number }[];
  linesFromEnd(): Iterable<string>;
}

/**
 * An append-only JSON-lines file. `write` hands a whole line (or several) to the kernel in one write() — a
 * killed process cannot lose it any more — and `sync` makes what was written durable (fdatasync).
 *
 * With `preallocate`, the file is grown ahead of the writes by whole chunks of zeros (the first sync after a
 * growth flushes the new size), and lines are written into that space: an fdatasync then has only data to flush, no change of the
 * file's size, which makes it two to three times cheaper. JSON never holds a NUL byte, so the first NUL marks
 * the end of the data; `close` cuts the unused zeros off again.
 */
export class AppendLog implements LineLog {
  private fd: number | null = null;
  /** Writes made, and how many of them are known durable: a sync covers the writes made before it started. */
  private writes = 0;
  private syncedWrites = 0;
  /** The fdatasync in the thread pool, if one is (group commit: a sync asked for meanwhile waits for it first). */
  private syncing: Promise<void> | null = null;
  /** With preallocation: where the data ends, and how big the file is. */
  private end = 0;
  private allocated = 0;

  private readonly fs: StoreFs;

  constructor(
    readonly path: string,
    private readonly options: { preallocate?: boolean; fs?: StoreFs } = {},
  ) {
    this.fs = options.fs ?? defaultStoreFs;
  }

  /** Opened for appending (preallocated: read-write, created when missing, never truncated). */
  private get openFlags(): number | string {
    return this.options.preallocate ? nodeFs.constants.O_RDWR | nodeFs.constants.O_CREAT : 'a+';
  }

  private open(): number {
    if (this.fd !== null) return this.fd;
    try {
      return this.adopt(this.fs.openSync(this.path, this.openFlags));
    } catch (error) {
      throw storeIoError(error, this.path, 'open for writing');
    }
  }

  /**
   * Opens the file now, waiting for the disk off the event loop (creating a file costs a journaled metadata
   * change): a drive does this as it starts, so its first write does not stop the other tasks of the process.
   */
  async openInBackground(): Promise<void> {
    if (this.fd !== null) return;
    const fd = await callbacks(this.fs)
      .open(this.path, this.openFlags)
      .catch((error: unknown) => {
        throw storeIoError(error, this.path, 'open for writing');
      });
    if (this.fd !== null) this.fs.closeSync(fd);
    else {
      try {
        this.adopt(fd);
      } catch (error) {
        throw storeIoError(error, this.path, 'open for writing');
      }
    }
  }

  /** Takes an open descriptor on: a torn last line is cut off, and (preallocated) where the data ends is found. */
  private adopt(fd: number): number {
    try {
      if (!this.options.preallocate) cutTornTail(fd, this.fs);
      else {
        this.allocated = this.fs.fstatSync(fd).size;
        this.end = cleanEnd(fd, this.allocated, this.fs);
      }
    } catch (error) {
      this.fs.closeSync(fd);
      throw error;
    }
    this.fd = fd;
    return fd;
  }

  write(text: string): void {
    const fd = this.open();
    try {
      if (!this.options.preallocate) {
        this.fs.writeSync(fd, text);
      } else {
        const length = Buffer.byteLength(text, 'utf8');
        if (this.end + length > this.allocated) this.grow(fd, this.end + length);
        this.fs.writeSync(fd, text, this.end, 'utf8');
        this.end += length;
      }
      this.writes += 1;
    } catch (error) {
      throw storeIoError(error, this.path, 'append to');
    }
  }

  /**
   * Zeros up to past `needed`, in chunks that double with the file (a short run's journal stays small): the
   * next sync flushes the new size with the data, and the syncs after it have only data to flush.
   */
  private grow(fd: number, needed: number): void {
    const step = Math.max(32 * 1024, Math.min(4 * 1024 * 1024, this.allocated));
    const target = Math.max(needed, this.allocated + step);
    const zeros = Buffer.alloc(Math.min(1024 * 1024, target - this.allocated));
    for (let at = this.allocated; at < target; at += zeros.length) this.fs.writeSync(fd, zeros, 0, Math.min(zeros.length, target - at), at);
    this.allocated = target;
  }

  /** fdatasyncs what was written since the last sync; returns whether there was anything to sync. */
  sync(): boolean {
    if (this.syncedWrites >= this.writes || this.fd === null) return false;
    const upTo = this.writes;
    try {
      this.fs.fdatasyncSync(this.fd);
      this.syncedWrites = Math.max(this.syncedWrites, upTo);
      return true;
    } catch (error) {
      throw storeIoError(error, this.path, 'sync');
    }
  }

  /**
   * `sync` in libuv's thread pool: the event loop goes on (other tasks' steps) while the disk works. Resolves
   * once every write made before the call is durable; returns whether there was anything to sync.
   */
  async syncInBackground(): Promise<boolean> {
    const wanted = this.writes;
    if (this.syncedWrites >= wanted || this.fd === null) return false;
    while (this.syncedWrites < wanted) {
      if (this.syncing) {
        await this.syncing;
        continue;
      }
      const fd = this.fd;
      if (fd === null) throw storeIoError(new Error('the file was closed before it was synced'), this.path, 'sync');
      const upTo = this.writes;
      this.syncing = callbacks(this.fs)
        .fdatasync(fd)
        .catch((error: unknown) => {
          throw storeIoError(error, this.path, 'sync');
        })
        .then(() => {
          this.syncedWrites = Math.max(this.syncedWrites, upTo);
        })
        .finally(() => {
          this.syncing = null;
        });
      await this.syncing;
    }
    return true;
  }

  append(entry: unknown): void {
    this.write(`${JSON.stringify(entry)}\n`);
    this.sync();
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      // The zeros ahead of the data are only for a run that is being written: a file at rest is just its lines.
      if (this.hasSpareZeros) this.fs.ftruncateSync(fd, this.end);
    } catch {
      // Left as it is: readers stop at the first zero anyway.
    }
    // A sync still in the thread pool keeps its descriptor until it is done (a reused number would be synced).
    if (this.syncing) void this.syncing.catch(() => {}).finally(() => this.fs.closeSync(fd));
    else this.fs.closeSync(fd);
  }

  /** Preallocated zeros past the data: for a run being written only (a file at rest is just its lines). */
  private get hasSpareZeros(): boolean {
    return Boolean(this.options.preallocate) && this.allocated > this.end;
  }

  /** `close` waiting for the disk off the event loop (cutting a preallocated file's zeros is a metadata change). */
  async closeInBackground(): Promise<void> {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    const call = callbacks(this.fs);
    await this.syncing?.catch(() => {});
    if (this.hasSpareZeros) {
      await call.ftruncate(fd, this.end).catch(() => {
        // Left as it is: readers stop at the first zero anyway.
      });
    }
    await call.close(fd).catch(() => {});
  }

  /** The file's complete lines with their 1-based numbers; a last line without its newline was never finished. */
  readLines(): { text: string; number: number }[] {
    let text: string;
    try {
      text = this.fs.readFileSync(this.path, 'utf8');
    } catch (error) {
      if (isNotFound(error)) return [];
      throw storeIoError(error, this.path, 'read');
    }
    const zero = text.indexOf('\0');
    if (zero !== -1) text = text.slice(0, zero);
    const lines = text.split('\n');
    lines.pop(); // after the last newline: empty, or a torn line
    const out: { text: string; number: number }[] = [];
    for (let i = 0; i < lines.length; i++) if (lines[i]!.trim()) out.push({ text: lines[i]!, number: i + 1 });
    return out;
  }

  /** Parsed complete lines; a line that is not JSON is named (the file was edited), never skipped. */
  readAll<T>(): T[] {
    return this.readLines().map(({ text, number }) => {
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new UserError(`${this.path}: line ${number} is not valid JSON (edited by hand?); the file was left untouched`);
      }
    });
  }

  /**
   * The complete lines at the end of the file, newest first, read backwards in blocks as far as the caller
   * iterates: finding the latest state costs the same however long the file is.
   */
  *linesFromEnd(): Generator<string> {
    let fd: number;
    try {
      fd = this.fs.openSync(this.path, 'r');
    } catch (error) {
      if (isNotFound(error)) return;
      throw storeIoError(error, this.path, 'read');
    }
    try {
      let position = dataEnd(fd, this.fs.fstatSync(fd).size, this.fs);
      let carry = Buffer.alloc(0);
      let sawEnd = false;
      const block = Buffer.alloc(64 * 1024);
      while (position > 0) {
        const length = Math.min(block.length, position);
        position -= length;
        this.fs.readSync(fd, block, 0, length, position);
        let chunk = Buffer.concat([block.subarray(0, length), carry]);
        if (!sawEnd) {
          // Drop a torn last line (no newline after it): it was never acknowledged.
          const lastNewline = chunk.lastIndexOf(10);
          if (lastNewline === -1) {
            carry = chunk;
            continue;
          }
          chunk = chunk.subarray(0, lastNewline);
          sawEnd = true;
        }
        let end = chunk.length;
        for (let i = chunk.length - 1; i >= 0; i--) {
          if (chunk[i] === 10) {
            if (end > i + 1) yield chunk.subarray(i + 1, end).toString('utf8');
            end = i;
          }
        }
        carry = Buffer.from(chunk.subarray(0, end));
      }
      if (sawEnd && carry.length) yield carry.toString('utf8');
    } finally {
      this.fs.closeSync(fd);
    }
  }
}

/** Where the data of a file ends: before the zeros a preallocated file has ahead of its data. */
function dataEnd(fd: number, size: number, fs: StoreFs): number {
  const block = Buffer.alloc(64 * 1024);
  let position = size;
  while (position > 0) {
    const length = Math.min(block.length, position);
    fs.readSync(fd, block, 0, length, position - length);
    for (let i = length - 1; i >= 0; i--) if (block[i] !== 0) return position - length + i + 1;
    position -= length;
  }
  return 0;
}

/** The end of the complete lines of a preallocated file; a torn last line is zeroed so new lines start clean. */
function cleanEnd(fd: number, size: number, fs: StoreFs): number {
  const end = dataEnd(fd, size, fs);
  const lineEnd = completeLinesEnd(fd, end, fs);
  if (lineEnd < end) {
    fs.writeSync(fd, Buffer.alloc(end - lineEnd), 0, end - lineEnd, lineEnd);
    fs.fdatasyncSync(fd);
  }
  return lineEnd;
}

/** A line cut short by a crash (no newline at the end of the file) is cut off, so the next append starts clean. */
function cutTornTail(fd: number, fs: StoreFs): void {
  const size = fs.fstatSync(fd).size;
  const lineEnd = completeLinesEnd(fd, size, fs);
  if (lineEnd < size) fs.ftruncateSync(fd, lineEnd);
}

/** Where the last complete line of the first `end` bytes ends (0 when there is none). */
function completeLinesEnd(fd: number, end: number, fs: StoreFs): number {
  if (end === 0) return 0;
  const last = Buffer.alloc(1);
  fs.readSync(fd, last, 0, 1, end - 1);
  if (last[0] === 10) return end;
  const block = Buffer.alloc(64 * 1024);
  let position = end;
  while (position > 0) {
    const length = Math.min(block.length, position);
    position -= length;
    fs.readSync(fd, block, 0, length, position);
    const newline = block.subarray(0, length).lastIndexOf(10);
    if (newline !== -1) return position + newline + 1;
  }
  return 0;
}
