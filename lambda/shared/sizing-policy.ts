import { type EbsVolumeType, VOLUME_LIMITS } from '../../contracts/ebs';

/**
 * How large an EBS data volume should grow: a pure decision, table-tested in
 * test/sizing-policy.test.ts. The expand-volume Lambda reads the state, calls {@link decideTargetSize}
 * and acts on the result.
 *
 * target = the largest of
 *   - ceil(current × (1 + growPercent/100))                       ("growPercent")
 *   - current + minGrowGiB                                         ("minGrowGiB")
 *   - the size that brings free space back above the warning level for the bytes in use now
 *     ("freeSpace"): ceil(usedBytes / (1 − warningFreePercent/100)), scaled by
 *     current size / filesystem size when both are known (filesystem overhead: inode tables, journal,
 *     partition offset), in GiB;
 * then clamped to maxSizeGiB and to the volume type's maximum (VOLUME_LIMITS). When the clamped
 * target is not larger than the current size, the volume is at the cap: the decision names the cap.
 *
 * `usedBytes` should be "bytes not available" (filesystem size − available), not df's "used":
 * the alarms compare available/size, and on ext4 the reserved blocks are neither used nor available.
 */

export const GIB = 1024 ** 3;

/**
 * Largest overhead factor applied when scaling by volume size / filesystem size. A larger gap means
 * the filesystem does not fill its volume (a partition smaller than the disk, or an earlier expansion
 * not grown into yet), which growing the filesystem fixes: it is not overhead to pay again.
 */
export const MAX_OVERHEAD_FACTOR = 1.25;

export interface SizingPolicy {
  /** Grow by at least this % of the current size (1..1000). */
  readonly growPercent: number;
  /** Grow by at least this many GiB. */
  readonly minGrowGiB: number;
  /** Cost guard: never grow beyond this size. */
  readonly maxSizeGiB: number;
  /** The warning alarm's level: free space below this % of the filesystem. */
  readonly warningFreePercent: number;
}

export interface VolumeUsage {
  /** The volume's size now, in GiB. */
  readonly currentSizeGiB: number;
  /** EBS volume type as DescribeVolumes reports it. */
  readonly volumeType: string;
  /** Bytes in use (not available) on the filesystem, from the disk report. */
  readonly usedBytes?: number | undefined;
  /** The filesystem's size in bytes, from the disk report. */
  readonly filesystemBytes?: number | undefined;
}

/** Which rule produced the (unclamped) target. */
export type SizingRule = 'growPercent' | 'minGrowGiB' | 'freeSpace';

export interface SizingCap {
  readonly capGiB: number;
  /** Human-readable name of the cap, e.g. `maxSizeGiB (4096 GiB)` or `the gp2 maximum (16384 GiB)`. */
  readonly capName: string;
}

export type SizingDecision =
  | (SizingCap & {
      readonly kind: 'grow';
      readonly currentSizeGiB: number;
      readonly targetSizeGiB: number;
      /** The target before clamping. */
      readonly wantedSizeGiB: number;
      readonly rule: SizingRule;
      /** True when the cap cut the target below what the rules asked for. */
      readonly clamped: boolean;
      readonly explanation: string;
    })
  | (SizingCap & {
      readonly kind: 'at-cap';
      readonly currentSizeGiB: number;
      readonly explanation: string;
    })
  | { readonly kind: 'unknown-type'; readonly explanation: string };

export function isKnownVolumeType(type: string): type is EbsVolumeType {
  return Object.hasOwn(VOLUME_LIMITS, type);
}

/** ceil(x) that ignores float noise below 1e-9 (so 100 × 1.1 gives 110, not 111). */
function ceilExact(x: number): number {
  return Math.ceil(x - 1e-9);
}

/** The GiB size that brings free space back to the warning level for `usedBytes`, or undefined. */
export function freeSpaceTargetGiB(
  usage: VolumeUsage,
  warningFreePercent: number,
): { readonly sizeGiB: number; readonly overheadFactor: number } | undefined {
  const { usedBytes, filesystemBytes, currentSizeGiB } = usage;
  if (usedBytes === undefined) return undefined;
  const neededFilesystemBytes = usedBytes / (1 - warningFreePercent / 100);
  let overheadFactor = 1;
  if (filesystemBytes !== undefined && filesystemBytes > 0) {
    const ratio = (currentSizeGiB * GIB) / filesystemBytes;
    overheadFactor = Math.min(MAX_OVERHEAD_FACTOR, Math.max(1, ratio));
  }
  return { sizeGiB: ceilExact((neededFilesystemBytes * overheadFactor) / GIB), overheadFactor };
}

/** The cap for a volume type under the policy: the smaller of maxSizeGiB and the type's maximum. */
export function capFor(policy: SizingPolicy, volumeType: EbsVolumeType): SizingCap {
  const typeMax = VOLUME_LIMITS[volumeType].maxGiB;
  if (policy.maxSizeGiB < typeMax) {
    return { capGiB: policy.maxSizeGiB, capName: `maxSizeGiB (${policy.maxSizeGiB} GiB)` };
  }
  if (policy.maxSizeGiB === typeMax) {
    return { capGiB: typeMax, capName: `maxSizeGiB and the ${volumeType} maximum (${typeMax} GiB)` };
  }
  return { capGiB: typeMax, capName: `the ${volumeType} maximum (${typeMax} GiB)` };
}

/** Decides the target size of a volume. Pure: same input, same output. */
export function decideTargetSize(policy: SizingPolicy, usage: VolumeUsage): SizingDecision {
  const { currentSizeGiB: current, volumeType } = usage;
  if (!isKnownVolumeType(volumeType)) {
    return {
      kind: 'unknown-type',
      explanation: `volume type ${JSON.stringify(volumeType)} is not one of ${Object.keys(VOLUME_LIMITS).join(', ')}: its size limit is unknown`,
    };
  }
  const cap = capFor(policy, volumeType);
  if (current >= cap.capGiB) {
    return {
      kind: 'at-cap',
      currentSizeGiB: current,
      ...cap,
      explanation: `the volume is ${current} GiB, at the cap: ${cap.capName}`,
    };
  }

  const candidates: { rule: SizingRule; sizeGiB: number }[] = [
    { rule: 'growPercent', sizeGiB: ceilExact((current * (100 + policy.growPercent)) / 100) },
    { rule: 'minGrowGiB', sizeGiB: current + policy.minGrowGiB },
  ];
  const free = freeSpaceTargetGiB(usage, policy.warningFreePercent);
  if (free !== undefined) candidates.push({ rule: 'freeSpace', sizeGiB: free.sizeGiB });
  let best = candidates[0] ?? { rule: 'minGrowGiB', sizeGiB: current + policy.minGrowGiB };
  for (const c of candidates) if (c.sizeGiB > best.sizeGiB) best = c;

  const wanted = best.sizeGiB;
  const target = Math.min(wanted, cap.capGiB);
  const clamped = target < wanted;
  const why =
    best.rule === 'growPercent'
      ? `${policy.growPercent}% growth`
      : best.rule === 'minGrowGiB'
        ? `minimum growth of ${policy.minGrowGiB} GiB`
        : `free space back above ${policy.warningFreePercent}% for the bytes in use now`;
  return {
    kind: 'grow',
    currentSizeGiB: current,
    targetSizeGiB: target,
    wantedSizeGiB: wanted,
    rule: best.rule,
    clamped,
    ...cap,
    explanation: clamped
      ? `grow ${current} → ${target} GiB: ${why} asks for ${wanted} GiB, clamped to the cap, ${cap.capName}`
      : `grow ${current} → ${target} GiB (${why})`,
  };
}

/** How close a volume is to its cap: `near-cap` within the warning margin, `at-cap` there. */
export type CapStatus = 'clear' | 'near-cap' | 'at-cap';

/**
 * The early warning near the cap, given the size a volume has after an expansion (or at the sizing
 * decision): `near-cap` when the size is within `warnWithinPercent`% of the cap (maxSizeGiB or the
 * type's maximum, {@link capFor}), `at-cap` at it, each with a sentence saying what the next
 * expansion will do; `clear` and '' when the cap is farther away or the type is unknown. Pure.
 */
export function capWarning(
  policy: SizingPolicy,
  sizeGiB: number,
  volumeType: string,
  warnWithinPercent: number,
): { readonly capStatus: CapStatus; readonly warning: string } {
  const clear = { capStatus: 'clear', warning: '' } as const;
  if (!isKnownVolumeType(volumeType) || sizeGiB <= 0) return clear;
  const cap = capFor(policy, volumeType);
  const left = cap.capGiB - sizeGiB;
  if (left > (cap.capGiB * warnWithinPercent) / 100) return clear;
  const plan = 'move the data to a larger volume (AddDataVolume, runbook §5B) or raise the cap';
  if (left <= 0) {
    return {
      capStatus: 'at-cap',
      warning: `at ${sizeGiB} GiB the volume is at its cap, ${cap.capName}: the next expansion will be refused; ${plan}`,
    };
  }
  const next = decideTargetSize(policy, { currentSizeGiB: sizeGiB, volumeType });
  const then =
    next.kind === 'grow' && !next.clamped
      ? `the next expansion grows it to ${next.targetSizeGiB} GiB`
      : 'the next expansion can only grow it to the cap, and the one after is refused';
  return {
    capStatus: 'near-cap',
    warning: `at ${sizeGiB} GiB the volume is within ${warnWithinPercent}% of its cap, ${cap.capName} (${left} GiB left): ${then}; ${plan}`,
  };
}
