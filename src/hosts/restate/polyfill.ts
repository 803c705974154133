/**
 * The Restate SDK (1.17) calls `Promise.withResolvers`, which Node 20 lacks: this module is imported before the
 * SDK is. It adds the method only where it is missing, exactly as the standard defines it.
 */
type WithResolvers = <T>() => { promise: Promise<T>; resolve: (value: T | PromiseLike<T>) => void; reject: (reason?: unknown) => void };

const PromiseWith = Promise as unknown as { withResolvers?: WithResolvers };
if (typeof PromiseWith.withResolvers !== 'function') {
  PromiseWith.withResolvers = function withResolvers<T>() {
    let resolve!: (value: T | PromiseLike<T>) => void;
    let reject!: (reason?: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

export {};

// The SDK logs every invocation at INFO; a worker's terminal shows Obra's own lines instead (RESTATE_LOGGING=INFO brings them back).
process.env.RESTATE_LOGGING ??= 'WARN';
