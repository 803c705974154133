import { expect } from 'vitest';
import { UserError } from '../../src/core/errors.js';

/** The message of the UserError `fn` throws; fails when it throws anything else or nothing. */
export const errorOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    return (error as Error).message;
  }
  throw new Error('expected a UserError');
};
