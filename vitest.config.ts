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
  },
});
