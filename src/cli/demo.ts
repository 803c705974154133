/**
 * Demo scenarios: a whole task driven through the real engine, the real child-process agent and the real
 * store, with `fixtures/fake-claude` standing in for Claude Code. Each scenario is a script of the fake's
 * replies plus the task and its checks.
 */
export interface DemoScenario {
  description: string;
  task: string;
  checks: string[];
  /** FAKE_CLAUDE_REPLIES for the fake CLI (one entry per call that reaches its "API"). */
  replies: unknown[];
}

export const DEMO_SCENARIOS: Record<string, DemoScenario> = {
  basic: {
    description: 'three iterations on one session; the second finds the session busy and backs off (2.0 s) once',
    task: 'Add a greet(name) function to greet.js and document it in README.md',
    checks: [],
    replies: [
      { result: 'Created greet.js with a greet(name) function that returns "Hello, <name>!".\nNext: document it.\nSTATUS: CONTINUE', tools: ['Write'], files: { 'greet.js': 'export const greet = (name) => `Hello, ${name}!`;\n' } },
      { busy: true },
      { result: 'Documented greet(name) in README.md with an example.\nNext: a final review.\nSTATUS: CONTINUE', tools: ['Read', 'Edit'], files: { 'README.md': '# greet\n\n`greet("Ada")` returns `"Hello, Ada!"`.\n' } },
      { result: 'Reviewed greet.js and README.md; the example matches the code and all tests pass.\nSTATUS: DONE', tools: ['Read', 'Bash'] },
    ],
  },
  checks: {
    description: 'the first answer fails its acceptance check, the feedback goes into the next prompt, the second passes',
    task: 'Write greeting.txt containing exactly "Hello, world"',
    checks: ['grep -qx "Hello, world" greeting.txt'],
    replies: [
      { result: 'Wrote greeting.txt with a greeting.\nSTATUS: DONE', tools: ['Write'], files: { 'greeting.txt': 'hello world\n' } },
      { result: 'The check showed the text must be exactly "Hello, world": fixed capitalisation and punctuation in greeting.txt.\nSTATUS: DONE', tools: ['Edit'], files: { 'greeting.txt': 'Hello, world\n' } },
    ],
  },
  escalate: {
    description: 'the agent only asks questions back; the engine detects it is stuck and waits for a human (`obra answer`)',
    task: 'Migrate the database to the new schema',
    checks: [],
    replies: ['Which database should I migrate?', 'Which database should I migrate?', 'Which database should I migrate?', 'Migrated the users table to the new schema as you said and ran the migration tests.\nSTATUS: DONE'],
  },
};
