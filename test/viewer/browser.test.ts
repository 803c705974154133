import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { chromiumOrSkip, findChromium } from './browser.js';

const roots: string[] = [];
/** A scratch folder with fake browsers: `exe('a/chromium')` makes an executable file and returns its path. */
function scratch() {
  const root = mkdtempSync(join(tmpdir(), 'obra-find-chromium-'));
  roots.push(root);
  const exe = (rel: string, mode = 0o755) => {
    const path = join(root, rel);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, '#!/bin/sh\n');
    chmodSync(path, mode);
    return path;
  };
  const dir = (rel: string) => {
    mkdirSync(join(root, rel), { recursive: true });
    return join(root, rel);
  };
  return { root, exe, dir };
}

afterEach(() => {
  vi.restoreAllMocks();
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

describe('findChromium', () => {
  it('takes CHROMIUM_PATH first, and refuses one that is not an executable file', () => {
    const s = scratch();
    const chosen = s.exe('chosen/my-chromium');
    s.exe('bin/chromium');
    const fallback = s.exe('fallback/chromium');
    expect(findChromium({ CHROMIUM_PATH: chosen, PATH: join(s.root, 'bin') }, [fallback])).toBe(chosen);
    expect(() => findChromium({ CHROMIUM_PATH: join(s.root, 'missing'), PATH: join(s.root, 'bin') }, [fallback])).toThrow(/CHROMIUM_PATH=.*missing is not an executable file/);
    expect(() => findChromium({ CHROMIUM_PATH: s.exe('plain', 0o644) }, [fallback])).toThrow(/not an executable file/);
    expect(() => findChromium({ CHROMIUM_PATH: s.dir('a-folder') }, [fallback])).toThrow(/not an executable file/);
  });

  it('searches PATH for chromium, chromium-browser, google-chrome, google-chrome-stable, in that order', () => {
    const s = scratch();
    const [a, b, c] = [s.dir('a'), s.dir('b'), s.dir('c')];
    const PATH = [a, b, c].join(delimiter);
    const stable = s.exe('a/google-chrome-stable');
    expect(findChromium({ PATH }, [])).toBe(stable);
    const chrome = s.exe('b/google-chrome');
    expect(findChromium({ PATH }, [])).toBe(chrome);
    const browser = s.exe('c/chromium-browser');
    expect(findChromium({ PATH }, [])).toBe(browser);
    // For one name, the earlier PATH entry wins; a non-executable file there does not count.
    s.exe('b/chromium', 0o644);
    const inC = s.exe('c/chromium');
    expect(findChromium({ PATH }, [])).toBe(inC);
    const inB = s.exe('b/chromium');
    expect(findChromium({ PATH }, [])).toBe(inB);
    // An empty CHROMIUM_PATH (as in `CHROMIUM_PATH= npm test`) is unset.
    expect(findChromium({ CHROMIUM_PATH: '', PATH }, [])).toBe(inB);
  });

  it('falls back to the given paths when PATH has none, and returns null when nothing is found', () => {
    const s = scratch();
    const PATH = s.dir('empty');
    const fallback = s.exe('usr/bin/chromium');
    expect(findChromium({ PATH }, [join(s.root, 'nowhere'), fallback])).toBe(fallback);
    expect(findChromium({ PATH }, [join(s.root, 'nowhere')])).toBeNull();
    expect(findChromium({}, [])).toBeNull();
  });
});

describe('chromiumOrSkip', () => {
  const nothing = () => ({ PATH: scratch().dir('empty') });

  it('gives the browser when there is one', () => {
    const s = scratch();
    const found = s.exe('bin/chromium');
    expect(chromiumOrSkip('x.test.ts', { PATH: join(s.root, 'bin'), CI: 'true' }, [])).toEqual({ path: found, skip: null });
  });

  it('outside CI, skips with one line on stderr', () => {
    for (const CI of [undefined, '', 'false']) {
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      const result = chromiumOrSkip('test/viewer/x.test.ts', { ...nothing(), CI }, []);
      expect(result).toEqual({ path: null, skip: 'no Chromium found (set CHROMIUM_PATH, or install one: apt-get install -y chromium)' });
      expect(stderr.mock.calls).toEqual([
        ['SKIPPING browser tests (test/viewer/x.test.ts): no Chromium found (set CHROMIUM_PATH, or install one: apt-get install -y chromium) — they run in CI\n'],
      ]);
      stderr.mockRestore();
    }
  });

  it('under CI=true, fails instead of skipping', () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(() => chromiumOrSkip('test/viewer/x.test.ts', { ...nothing(), CI: 'true' }, [])).toThrow(/no Chromium found .*CI must run the browser tests \(test\/viewer\/x\.test\.ts/);
    expect(stderr).not.toHaveBeenCalled();
  });

  it('fails on a wrong CHROMIUM_PATH even outside CI', () => {
    expect(() => chromiumOrSkip('x.test.ts', { ...nothing(), CHROMIUM_PATH: '/nonexistent/chromium' }, [])).toThrow('CHROMIUM_PATH=/nonexistent/chromium is not an executable file');
  });
});
