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
  /**
   * Pre-expansion snapshots kept per volume: after taking a new one, expand-volume deletes this
   * deployment's older `completed` pre-expansion snapshots of the volume beyond the newest this many
   * (the one just taken is never deleted and not counted). @default 3
   */
  readonly snapshotsKept: number;
  /**
   * With snapshotsKept: a snapshot beyond the newest `snapshotsKept` is deleted only once it is at
   * least this many days old (0: as soon as it is beyond them). @default 0
   */
  readonly snapshotsDeleteAfterDays: number;
  /**
   * Early warning: when a volume is, after an expansion, within this % of its cap (maxSizeGiB or
   * the type's maximum), ExpandVolume notifies that expansions will soon be refused (0: only once
   * at the cap). @default 25
   */
  readonly warnWithinPercent: number;
}

/** The defaults of {@link ExpansionConfig}. */
export const DEFAULT_EXPANSION: ExpansionConfig = {
  growPercent: 50,
  minGrowGiB: 10,
  maxSizeGiB: 4096,
  snapshotBeforeExpand: true,
  snapshotsKept: 3,
  snapshotsDeleteAfterDays: 0,
  warnWithinPercent: 25,
};

/**
 * The tag expand-volume puts on the snapshot it takes before it grows a volume: what it is for.
 * Its retention (and IAM) deletes only snapshots carrying it; DLM's daily ones carry
 * `stemedb:snapshot=daily` instead.
 */
export const SNAPSHOT_PURPOSE_TAG_KEY = 'stemedb:reason';
export const PRE_EXPANSION_PURPOSE = 'expand-volume';
