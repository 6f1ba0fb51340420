/**
 * The values an operator parameter that admits only this deployment's value(s) must refuse, built
 * one way for every suite that checks such a parameter (automation-documents, wal-cleanup,
 * inode-cleanup): the values no path, unit or URL may take, those of the parameter's kind, the
 * suite's own extra values, and one-change near misses of each allowed value.
 */
import {
  HOSTILE_ANYWHERE,
  HOSTILE_PATHS,
  HOSTILE_UNITS,
  HOSTILE_URLS,
  nearMisses,
} from './operator-parameters';

/** What a parameter names on the host. */
export type HostileKind = 'path' | 'unit' | 'url';

/** The hostile values of each kind. */
export const HOSTILE_OF_KIND: Readonly<Record<HostileKind, readonly string[]>> = {
  path: HOSTILE_PATHS,
  unit: HOSTILE_UNITS,
  url: HOSTILE_URLS,
};

/**
 * `HOSTILE_ANYWHERE`, the hostile values of `kind`, `extra` and the near misses of every value of
 * `allowed`, each once and none of them an allowed value.
 */
export function valuesToRefuse(
  kind: HostileKind,
  allowed: readonly string[],
  extra: readonly string[] = [],
): string[] {
  const values = new Set([
    ...HOSTILE_ANYWHERE,
    ...HOSTILE_OF_KIND[kind],
    ...extra,
    ...allowed.flatMap(nearMisses),
  ]);
  for (const v of allowed) values.delete(v);
  return [...values];
}
