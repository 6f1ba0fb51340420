/**
 * `npx stemedb-capacity`: the runbook's capacity planning on the command line.
 *
 *   npx stemedb-capacity --daily-assertions 1000 --total-assertions 100000
 *       [--wal-retention-days 7] [--backup-retention 7] [--headroom 4] [--round-to-gib 10]
 *   npx stemedb-capacity --from-metrics usage.csv [--size-gib 100]
 *
 * The first form prints the runbook's growth formula as a table (WAL, database, indexes, backups)
 * and the volume size to provision. The second reads observed usage (CSV `timestamp,usedBytes
 * [,sizeBytes]`, or the JSON of `aws cloudwatch get-metric-data` with query Ids `used`, or `free`
 * and `total`) and prints the growth rate and when the disk fills. `--json` prints JSON instead.
 * Bad input: one line on stderr naming what was wrong, exit 2.
 */
import { readFileSync } from 'node:fs';
import {
  CapacityInputError,
  forecastGrowth,
  MB,
  parseUsageSamples,
  planCapacity,
} from '../lib/capacity-plan';

const USAGE =
  'usage: stemedb-capacity --daily-assertions N --total-assertions N [--wal-retention-days 7] [--backup-retention 7] [--headroom 4] [--round-to-gib 10] [--json]\n' +
  '       stemedb-capacity --from-metrics FILE [--size-gib N] [--json]';

const NUMERIC = new Set([
  '--daily-assertions',
  '--total-assertions',
  '--wal-retention-days',
  '--backup-retention',
  '--headroom',
  '--round-to-gib',
  '--size-gib',
]);

function parseArgs(argv: readonly string[]): {
  numbers: Map<string, number>;
  metrics?: string;
  json: boolean;
  help: boolean;
} {
  const numbers = new Map<string, number>();
  let metrics: string | undefined;
  let json = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--json') {
      json = true;
      continue;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    const value = argv[i + 1];
    if (!NUMERIC.has(arg) && arg !== '--from-metrics')
      throw new CapacityInputError(`unknown option ${arg} (--help lists the options)`);
    if (value === undefined || value.startsWith('--')) throw new CapacityInputError(`${arg} needs a value`);
    i++;
    if (arg === '--from-metrics') {
      metrics = value;
      continue;
    }
    if (!/^\d+(\.\d+)?$/.test(value))
      throw new CapacityInputError(`${arg} is ${JSON.stringify(value)}; expected a number ≥ 0`);
    numbers.set(arg, Number(value));
  }
  return { numbers, metrics, json, help };
}

const mb = (bytes: number): string => `${Math.round(bytes / MB).toLocaleString('en-US')} MB`;

function main(argv: readonly string[]): string {
  const { numbers, metrics, json, help } = parseArgs(argv);
  if (help) return USAGE;
  if (metrics !== undefined) {
    let text: string;
    try {
      text = readFileSync(metrics, 'utf8');
    } catch (err) {
      throw new CapacityInputError(
        `--from-metrics ${metrics}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      );
    }
    const sizeGiB = numbers.get('--size-gib');
    if (sizeGiB !== undefined && !(sizeGiB > 0))
      throw new CapacityInputError(`--size-gib is ${sizeGiB}; expected > 0`);
    const f = forecastGrowth(
      parseUsageSamples(text),
      sizeGiB === undefined ? undefined : sizeGiB * 1024 ** 3,
    );
    if (json) return JSON.stringify(f, null, 2);
    const lines = [
      `samples: ${f.samples} from ${f.from.toISOString()} to ${f.to.toISOString()}`,
      `growth: ${mb(f.bytesPerDay)}/day (least squares)`,
      `used now: ${mb(f.lastUsedBytes)}${f.sizeBytes === undefined ? '' : ` of ${mb(f.sizeBytes)}`}`,
    ];
    if (f.sizeBytes === undefined)
      lines.push('size unknown: give --size-gib or a sizeBytes column to forecast when it fills');
    else if (f.fullAt === undefined) lines.push('not growing: it does not fill at this rate');
    else
      lines.push(
        `full in ${(f.daysUntilFull ?? 0).toFixed(1)} days, around ${f.fullAt.toISOString().slice(0, 10)}`,
      );
    return lines.join('\n');
  }
  const daily = numbers.get('--daily-assertions');
  const total = numbers.get('--total-assertions');
  if (daily === undefined || total === undefined)
    throw new CapacityInputError(
      '--daily-assertions and --total-assertions are required (or --from-metrics FILE)',
    );
  const plan = planCapacity({
    dailyAssertions: daily,
    totalAssertions: total,
    walRetentionDays: numbers.get('--wal-retention-days'),
    backupRetentionCount: numbers.get('--backup-retention'),
    headroom: numbers.get('--headroom'),
    roundToGiB: numbers.get('--round-to-gib'),
  });
  if (json) return JSON.stringify(plan, null, 2);
  const rows = plan.lines.map(
    (l) => `| ${l.component.padEnd(9)}| ${l.calculation.padEnd(34)}| ${mb(l.bytes).padStart(12)} |`,
  );
  return [
    `| Component| Calculation${' '.repeat(23)}|         Size |`,
    `|----------|${'-'.repeat(35)}|--------------|`,
    ...rows,
    `| Total    | ${' '.repeat(34)}| ${mb(plan.totalBytes).padStart(12)} |`,
    '',
    `Provision ${plan.recommendedGiB} GiB (${plan.headroom}x headroom over ${mb(plan.totalBytes)}).`,
  ].join('\n');
}

try {
  process.stdout.write(`${main(process.argv.slice(2))}\n`);
} catch (err) {
  if (!(err instanceof CapacityInputError)) throw err;
  process.stderr.write(`stemedb-capacity: ${err.message}\n`);
  process.exit(2);
}
