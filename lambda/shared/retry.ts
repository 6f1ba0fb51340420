/**
 * Bounded retry with exponential backoff and full jitter, for AWS throttling only.
 * Anything that is not throttling is rethrown at once: the caller decides what it means.
 */

/** AWS error codes that mean "slow down and try again". */
export const THROTTLING_CODES: ReadonlySet<string> = new Set([
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'SlowDown',
  'RequestThrottled',
  'RequestThrottledException',
]);

export interface RetryOptions {
  /** Attempts in all, the first included. @default 5 */
  readonly maxAttempts?: number;
  /** First backoff ceiling in ms; doubles each attempt. @default 200 */
  readonly baseDelayMs?: number;
  /** Largest backoff ceiling in ms. @default 5000 */
  readonly maxDelayMs?: number;
  /** Injected for tests. @default setTimeout-based sleep */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Injected for tests. @default Math.random */
  readonly random?: () => number;
}

/** The AWS error code of an SDK v3 error (`name`, or `Code` for some query-protocol errors). */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { name?: unknown; Code?: unknown; code?: unknown };
  for (const v of [e.Code, e.code, e.name]) if (typeof v === 'string' && v !== 'Error') return v;
  return undefined;
}

/**
 * What `call` answers, or `fallback` when it fails with the AWS error `code`: for the errors that
 * are an answer (no such parameter, key or volume; a write's condition not met), not a fault.
 * Any other error is thrown.
 */
export async function unlessAwsError<T, F>(
  code: string,
  fallback: F,
  call: () => Promise<T>,
): Promise<T | F> {
  try {
    return await call();
  } catch (err) {
    if (errorCode(err) === code) return fallback;
    throw err;
  }
}

export function isThrottling(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && THROTTLING_CODES.has(code);
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `call`, retrying throttling errors with full-jitter backoff, at most `maxAttempts` times. */
export async function withThrottlingRetry<T>(call: () => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 5;
  const base = options.baseDelayMs ?? 200;
  const cap = options.maxDelayMs ?? 5000;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!isThrottling(err) || attempt >= maxAttempts) throw err;
      await sleep(Math.floor(random() * Math.min(cap, base * 2 ** (attempt - 1))));
    }
  }
}
