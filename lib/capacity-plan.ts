/**
 * The runbook's capacity planning ("Disk Full" → Capacity Planning), as pure functions: the disk
 * growth formula per component, a recommended volume size with headroom, and, from observed usage,
 * the growth rate and when the disk fills.
 *
 * | Component | Growth rate               | Calculation                                      |
 * |-----------|---------------------------|--------------------------------------------------|
 * | WAL       | ~10 MB per 1K assertions  | retention_days × daily_assertions × 10 MB / 1000 |
 * | Database  | ~50 MB per 10K assertions | (total_assertions / 10000) × 50 MB               |
 * | Indexes   | ~10% of database size     | database_size × 0.1                              |
 * | Backups   | 1× data size per backup   | (wal_size + db_size) × retention_count           |
 *
 * The runbook's pilot: 100K assertions, 1K/day, 7-day retention, 7 backups → WAL 70 MB, database
 * 500 MB, indexes 50 MB, backups 3,990 MB ("4GB"), total 4,610 MB ("~5GB"), and "provision 20GB for
 * 4x headroom". MB here is the runbook's (10^6 bytes, as it adds 70 + 500 + 50 + 3990); sizes are
 * rounded up to whole GiB for EBS, and to a multiple of `roundToGiB` (default 10, so 4 × 4.6 GB →
 * 20 GiB, the runbook's figure).
 */

export const MB = 1_000_000;
const GIB = 1024 ** 3;

export interface CapacityInputs {
  /** Assertions written per day. */
  readonly dailyAssertions: number;
  /** Assertions the database will hold (the sizing horizon). */
  readonly totalAssertions: number;
  /** `[wal] retention_days`. @default 7 */
  readonly walRetentionDays?: number;
  /** Daily backups kept. @default 7 */
  readonly backupRetentionCount?: number;
  /** Provision this many times the computed total. @default 4 */
  readonly headroom?: number;
  /** Round the recommendation up to a multiple of this many GiB. @default 10 */
  readonly roundToGiB?: number;
}

export interface CapacityLine {
  readonly component: 'WAL' | 'Database' | 'Indexes' | 'Backups';
  readonly calculation: string;
  readonly bytes: number;
}

export interface CapacityPlan {
  readonly lines: readonly CapacityLine[];
  readonly totalBytes: number;
  readonly headroom: number;
  /** totalBytes × headroom, rounded up to whole GiB and to `roundToGiB`. */
  readonly recommendedGiB: number;
}

/** A bad input: the message names the input and the accepted form. */
export class CapacityInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CapacityInputError';
  }
}

function checked(name: string, value: number, opts: { min: number; integer?: boolean }): number {
  if (!Number.isFinite(value) || value < opts.min || (opts.integer === true && !Number.isInteger(value))) {
    const kind = opts.integer === true ? 'a whole number' : 'a number';
    throw new CapacityInputError(`${name} is ${String(value)}; expected ${kind} ≥ ${opts.min}`);
  }
  return value;
}

/** The runbook's growth formula for `inputs`. Throws {@link CapacityInputError} for bad inputs. */
export function planCapacity(inputs: CapacityInputs): CapacityPlan {
  const daily = checked('dailyAssertions', inputs.dailyAssertions, { min: 0 });
  const total = checked('totalAssertions', inputs.totalAssertions, { min: 0 });
  const retention = checked('walRetentionDays', inputs.walRetentionDays ?? 7, { min: 1, integer: true });
  const backups = checked('backupRetentionCount', inputs.backupRetentionCount ?? 7, {
    min: 0,
    integer: true,
  });
  const headroom = checked('headroom', inputs.headroom ?? 4, { min: 1 });
  const roundTo = checked('roundToGiB', inputs.roundToGiB ?? 10, { min: 1, integer: true });

  const wal = (retention * daily * 10 * MB) / 1000;
  const db = (total / 10_000) * 50 * MB;
  const indexes = db * 0.1;
  const backupBytes = (wal + db) * backups;
  const lines: CapacityLine[] = [
    { component: 'WAL', calculation: `${retention} days × ${daily}/day × 10 MB / 1000`, bytes: wal },
    { component: 'Database', calculation: `(${total} / 10000) × 50 MB`, bytes: db },
    { component: 'Indexes', calculation: 'database × 0.1', bytes: indexes },
    { component: 'Backups', calculation: `(WAL + database) × ${backups}`, bytes: backupBytes },
  ];
  const totalBytes = wal + db + indexes + backupBytes;
  const wholeGiB = Math.max(1, Math.ceil((totalBytes * headroom) / GIB));
  return { lines, totalBytes, headroom, recommendedGiB: Math.ceil(wholeGiB / roundTo) * roundTo };
}

/** One observation of the data filesystem: time and bytes used (and its size, if known). */
export interface UsageSample {
  readonly at: Date;
  readonly usedBytes: number;
  readonly sizeBytes?: number;
}

export interface GrowthForecast {
  readonly samples: number;
  readonly from: Date;
  readonly to: Date;
  /** Least-squares slope of used bytes over time. */
  readonly bytesPerDay: number;
  readonly lastUsedBytes: number;
  readonly sizeBytes: number | undefined;
  /** When used reaches the size at this rate (undefined: not growing, or size unknown). */
  readonly fullAt: Date | undefined;
  readonly daysUntilFull: number | undefined;
}

/** The growth rate of `samples` (least squares) and when the disk fills at that rate. */
export function forecastGrowth(samples: readonly UsageSample[], sizeBytes?: number): GrowthForecast {
  if (samples.length < 2)
    throw new CapacityInputError(`metrics: ${samples.length} sample(s); expected at least 2`);
  const sorted = [...samples].sort((a, b) => a.at.getTime() - b.at.getTime());
  const first = sorted[0] as UsageSample;
  const last = sorted[sorted.length - 1] as UsageSample;
  if (last.at.getTime() === first.at.getTime())
    throw new CapacityInputError('metrics: every sample has the same time; expected samples over a period');
  const xs = sorted.map((s) => (s.at.getTime() - first.at.getTime()) / 86_400_000);
  const ys = sorted.map((s) => s.usedBytes);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  const bytesPerDay = num / den;
  const size = sizeBytes ?? last.sizeBytes;
  let fullAt: Date | undefined;
  let daysUntilFull: number | undefined;
  if (size !== undefined && bytesPerDay > 0) {
    daysUntilFull = Math.max(0, (size - last.usedBytes) / bytesPerDay);
    fullAt = new Date(last.at.getTime() + daysUntilFull * 86_400_000);
  }
  return {
    samples: sorted.length,
    from: first.at,
    to: last.at,
    bytesPerDay,
    lastUsedBytes: last.usedBytes,
    sizeBytes: size,
    fullAt,
    daysUntilFull,
  };
}

/**
 * Usage samples from a metrics file: CSV lines `timestamp,usedBytes[,sizeBytes]` (a header line is
 * skipped), or the JSON of `aws cloudwatch get-metric-data` with queries whose Ids are `used` (or
 * `free` together with `total`) and optionally `total`.
 */
export function parseUsageSamples(text: string): UsageSample[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) return fromGetMetricData(trimmed);
  const samples: UsageSample[] = [];
  for (const [i, raw] of trimmed.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [at, used, size, ...rest] = line.split(',').map((x) => x.trim());
    if (i === 0 && Number.isNaN(Date.parse(at ?? ''))) continue;
    const time = Date.parse(at ?? '');
    const usedBytes = Number(used);
    const sizeBytes = size === undefined || size === '' ? undefined : Number(size);
    if (rest.length > 0 || Number.isNaN(time) || !Number.isFinite(usedBytes) || usedBytes < 0)
      throw new CapacityInputError(
        `metrics line ${i + 1}: ${JSON.stringify(line)}; expected timestamp,usedBytes[,sizeBytes]`,
      );
    if (sizeBytes !== undefined && (!Number.isFinite(sizeBytes) || sizeBytes <= 0))
      throw new CapacityInputError(`metrics line ${i + 1}: size ${JSON.stringify(size)}; expected bytes > 0`);
    samples.push({ at: new Date(time), usedBytes, sizeBytes });
  }
  return samples;
}

interface MetricDataResult {
  readonly Id?: string;
  readonly Timestamps?: readonly string[];
  readonly Values?: readonly number[];
}

function fromGetMetricData(text: string): UsageSample[] {
  let parsed: { MetricDataResults?: MetricDataResult[] };
  try {
    parsed = JSON.parse(text) as { MetricDataResults?: MetricDataResult[] };
  } catch (err) {
    throw new CapacityInputError(`metrics: not valid JSON (${(err as Error).message})`);
  }
  const series = new Map<string, Map<number, number>>();
  for (const r of parsed.MetricDataResults ?? []) {
    const points = new Map<number, number>();
    (r.Timestamps ?? []).forEach((t, i) => {
      const v = r.Values?.[i];
      if (v !== undefined) points.set(Date.parse(t), v);
    });
    series.set(r.Id ?? '', points);
  }
  const used = series.get('used');
  const free = series.get('free');
  const total = series.get('total');
  if (used === undefined && (free === undefined || total === undefined))
    throw new CapacityInputError('metrics: expected MetricDataResults with Id "used", or "free" and "total"');
  const times = [...(used ?? free ?? new Map()).keys()].sort((a, b) => a - b);
  return times.map((t) => {
    const size = total?.get(t);
    const usedBytes = used?.get(t) ?? (size ?? 0) - (free?.get(t) ?? 0);
    return { at: new Date(t), usedBytes, sizeBytes: size };
  });
}
