import { closeSync, fdatasyncSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { SyncAdapter } from 'lowdb';
import type { z } from 'zod';
import { UserError } from '../core/errors.js';

/**
 * A lowdb adapter whose writes survive SIGKILL and power loss: write a temp file, fsync it, rename it over the
 * old one, fsync the directory. A reader sees the old file or the new one, never half of one. (lowdb's own
 * JSONFile renames too, but never fsyncs.) Reads are validated, and a bad file is named in the error.
 */
export class DurableJsonFile<T> implements SyncAdapter<T> {
  constructor(
    readonly path: string,
    private readonly schema: z.ZodType<T>,
  ) {}

  read(): T | null {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new UserError(`cannot read ${this.path}: ${(error as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new UserError(`${this.path} is not valid JSON (truncated or edited by hand?); it was left untouched — restore it from a backup or remove the run`);
    }
    const parsed = this.schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new UserError(`${this.path} is not an Obra file of the expected format (${issue?.path.join('.') || 'root'}: ${issue?.message}); it was left untouched`);
    }
    return parsed.data;
  }

  write(data: T): void {
    writeFileDurably(this.path, JSON.stringify(data));
  }
}

export function writeFileDurably(path: string, text: string): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(temp, 'w');
  try {
    writeSync(fd, text);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  syncDirectory(dirname(path));
}

export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** An append-only JSON-lines file, each append fdatasync'd before it returns. */
export class DurableLog {
  private fd: number | null = null;

  constructor(readonly path: string) {}

  append(entry: unknown): void {
    this.fd ??= openSync(this.path, 'a');
    writeSync(this.fd, `${JSON.stringify(entry)}\n`);
    fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** Every complete line; a last line cut short by a crash is ignored (it was never acknowledged). */
  readAll<T>(): T[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const lines = text.split('\n');
    const out: T[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as T);
      } catch {
        if (i >= lines.length - 2) break; // torn tail from a crash mid-append
        throw new UserError(`${this.path}: line ${i + 1} is not valid JSON (edited by hand?); the file was left untouched`);
      }
    }
    return out;
  }
}
