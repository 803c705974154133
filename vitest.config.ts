import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The CLI tests run dist/: rebuilt first when a source is newer (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    // Child-process tests (fake and real CLI) need more than the default 5 s on a shared 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two files at once (vitest's default is one less than the cores: one, on the 2-core machines here). Most of
    // the suite waits on real processes, servers and timers rather than computing, so the second core is free.
    maxWorkers: 2,
  },
});
