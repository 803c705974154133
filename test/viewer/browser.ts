import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/** The names a Chromium goes by on PATH (Debian, Ubuntu, Google's packages), tried in this order. */
export const CHROMIUM_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
/** Debian's Chromium: where `.ci/run` installs it, found even when PATH is bare. */
export const CHROMIUM_FALLBACKS = ['/usr/bin/chromium'];
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The Chromium to drive: CHROMIUM_PATH, else the first of CHROMIUM_NAMES on PATH, else a fallback; null when
 * there is none. PATH is searched here (no `which`) so that this stays a pure function of `env` and the disk.
 * A CHROMIUM_PATH that is not an executable file throws: the user asked for that browser, guessing another would hide the typo.
 */
export function findChromium(env: NodeJS.ProcessEnv = process.env, fallbacks: readonly string[] = CHROMIUM_FALLBACKS): string | null {
  if (env.CHROMIUM_PATH) {
    if (isExecutable(env.CHROMIUM_PATH)) return env.CHROMIUM_PATH;
    throw new Error(`CHROMIUM_PATH=${env.CHROMIUM_PATH} is not an executable file: fix it, or unset it to search PATH and ${fallbacks.join(', ')}`);
  }
  const dirs = (env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const name of CHROMIUM_NAMES) {
    for (const dir of dirs) if (isExecutable(join(dir, name))) return join(dir, name);
  }
  return fallbacks.find(isExecutable) ?? null;
}

/**
 * The browser for a test file that needs one. In CI a missing browser fails the suite (`.ci/run` installs
 * Debian's chromium, so the viewer tests must run there). Locally the file's tests are skipped with one line
 * on stderr, so that `npm test` passes on a machine without Chromium.
 */
export function chromiumOrSkip(
  testFile: string,
  env: NodeJS.ProcessEnv = process.env,
  fallbacks: readonly string[] = CHROMIUM_FALLBACKS,
): { path: string; skip: null } | { path: null; skip: string } {
  const path = findChromium(env, fallbacks);
  if (path) return { path, skip: null };
  const reason = 'no Chromium found (set CHROMIUM_PATH, or install one: apt-get install -y chromium)';
  const inCI = Boolean(env.CI) && env.CI !== 'false';
  if (inCI) throw new Error(`${reason}: CI must run the browser tests (${testFile}; .ci/run installs chromium)`);
  process.stderr.write(`SKIPPING browser tests (${testFile}): ${reason} — they run in CI\n`);
  return { path: null, skip: reason };
}

/** A headless Chromium with a fresh profile that is deleted on close. */
export async function openChromium(executablePath: string, viewport = { width: 1500, height: 1000 }): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'obra-chromium-'));
  // Playwright passes the profile folder to Chromium as --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args: FLAGS, viewport, deviceScaleFactor: 1 });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
