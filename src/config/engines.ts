/** Where tasks run (config `engine`, flag `--engine`); its own module so that the CLI checks the flag without loading zod. */
export const ENGINES = ['local', 'restate'] as const;
