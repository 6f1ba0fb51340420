/**
 * How the expand-volume Lambda sizes a volume (runbook §5A): the configuration's `expansion`
 * section (lib/config.ts validates it) and the defaults the Lambda falls back to when its
 * environment leaves a value out.
 */

/** How the expand-volume Lambda sizes a volume. */
export interface ExpansionConfig {
  /** Grow by at least this % of the current size. @default 50 */
  readonly growPercent: number;
  /** Grow by at least this many GiB. @default 10 */
  readonly minGrowGiB: number;
  /** Never grow beyond this size (a cost guard); also capped by the type's maximum. @default 4096 */
  readonly maxSizeGiB: number;
  /** Take a snapshot before modifying the volume. @default true */
  readonly snapshotBeforeExpand: boolean;
}

/** The defaults of {@link ExpansionConfig}. */
export const DEFAULT_EXPANSION: ExpansionConfig = {
  growPercent: 50,
  minGrowGiB: 10,
  maxSizeGiB: 4096,
  snapshotBeforeExpand: true,
};
