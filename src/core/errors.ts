/**
 * A problem the user can fix (bad flag, bad config, missing binary, unknown run). The CLI prints its message
 * on one line and exits with `exitCode` (2 by default) — never a stack trace.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}
