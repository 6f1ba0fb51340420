/**
 * EBS facts (checked against the EBS user guide, see DESIGN.md "Facts to design around"): the
 * volume types a data volume may use and their size, IOPS and throughput limits. The configuration
 * validates volumes against them, the stack passes them to AddDataVolume, and the sizing policy
 * caps an expansion at the type's maximum.
 */

/** EBS volume types the data volume may use. */
export const EBS_VOLUME_TYPES = ['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard'] as const;
export type EbsVolumeType = (typeof EBS_VOLUME_TYPES)[number];

/** One volume type's limits: size (GiB) and, where provisioned, IOPS and throughput (MiB/s). */
export interface VolumeTypeLimits {
  readonly minGiB: number;
  readonly maxGiB: number;
  readonly iops?: { readonly min: number; readonly max: number; readonly perGiB: number };
  readonly throughput?: { readonly min: number; readonly max: number; readonly perIops: number };
}

/** Per volume type: size limits (GiB) and, where provisioned, IOPS and throughput limits. */
export const VOLUME_LIMITS: Readonly<Record<EbsVolumeType, VolumeTypeLimits>> = {
  gp3: {
    minGiB: 1,
    maxGiB: 65_536,
    iops: { min: 3000, max: 80_000, perGiB: 500 },
    throughput: { min: 125, max: 2000, perIops: 0.25 },
  },
  io2: { minGiB: 4, maxGiB: 65_536, iops: { min: 100, max: 256_000, perGiB: 1000 } },
  io1: { minGiB: 4, maxGiB: 16_384, iops: { min: 100, max: 64_000, perGiB: 50 } },
  gp2: { minGiB: 1, maxGiB: 16_384 },
  st1: { minGiB: 125, maxGiB: 16_384 },
  sc1: { minGiB: 125, maxGiB: 16_384 },
  standard: { minGiB: 1, maxGiB: 1024 },
};
