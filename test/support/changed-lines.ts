import { expect } from 'vitest';

/**
 * Indices of the lines that differ between two texts of the same number of lines (checked): the
 * byte-preserving config edits change only the lines of the keys they set.
 */
export function changedLines(before: string, after: string): number[] {
  const a = before.split('\n');
  const b = after.split('\n');
  expect(b).toHaveLength(a.length);
  return a.flatMap((line, i) => (line === b[i] ? [] : [i]));
}
