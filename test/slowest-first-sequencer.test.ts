import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SLOW_TEST_FILES } from './support/slowest-first-sequencer';

describe('the slowest-first test order', () => {
  it('names only test files that exist, each once, slowest first', () => {
    const files = SLOW_TEST_FILES.map(([file]) => file);
    expect(files.filter((f) => !existsSync(f))).toEqual([]);
    expect(new Set(files).size).toBe(files.length);
    const seconds = SLOW_TEST_FILES.map(([, s]) => s);
    expect(seconds).toEqual([...seconds].sort((a, b) => b - a));
  });
});
