/**
 * Capacity planning (runbook "Capacity Planning"): the growth formula, the recommendation with
 * headroom, the forecast from observed usage, and the CLI run as a user would (`npx
 * stemedb-capacity`), bad input included.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  CapacityInputError,
  forecastGrowth,
  MB,
  parseUsageSamples,
  planCapacity,
} from '../lib/capacity-plan';

const CLI = join(__dirname, '..', 'bin', 'stemedb-capacity.js');

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
}

describe('planCapacity', () => {
  test("gives the runbook's pilot: 70 MB WAL, 500 MB database, 50 MB indexes, 3,990 MB backups, provision 20 GiB", () => {
    const plan = planCapacity({ dailyAssertions: 1000, totalAssertions: 100_000 });
    expect(plan.lines.map((l) => [l.component, l.bytes / MB])).toEqual([
      ['WAL', 70],
      ['Database', 500],
      ['Indexes', 50],
      ['Backups', 3990],
    ]);
    expect(plan.totalBytes / MB).toBe(4610);
    expect(plan.recommendedGiB).toBe(20);
  });

  test('scales WAL with retention and daily load, backups with their count', () => {
    const plan = planCapacity({
      dailyAssertions: 50_000,
      totalAssertions: 1e6,
      walRetentionDays: 14,
      backupRetentionCount: 3,
    });
    expect(plan.lines[0]?.bytes).toBe(14 * 50_000 * 10_000);
    expect(plan.lines[3]?.bytes).toBe((7000 * MB + 5000 * MB) * 3);
  });

  test.each([
    [{ dailyAssertions: -1, totalAssertions: 1 }, /dailyAssertions is -1/],
    [{ dailyAssertions: 1, totalAssertions: Number.NaN }, /totalAssertions is NaN/],
    [
      { dailyAssertions: 1, totalAssertions: 1, walRetentionDays: 0.5 },
      /walRetentionDays is 0.5; expected a whole number/,
    ],
    [{ dailyAssertions: 1, totalAssertions: 1, headroom: 0 }, /headroom is 0/],
  ])('rejects %j naming the input', (inputs, message) => {
    expect(() => planCapacity(inputs)).toThrow(CapacityInputError);
    expect(() => planCapacity(inputs)).toThrow(message);
  });
});

describe('forecastGrowth', () => {
  const day = (n: number) => new Date(Date.UTC(2026, 10, 1 + n));

  test('fits the growth rate and says when the disk fills', () => {
    const samples = [0, 1, 2, 3].map((n) => ({ at: day(n), usedBytes: 10e9 + n * 2e9, sizeBytes: 30e9 }));
    const f = forecastGrowth(samples);
    expect(f.bytesPerDay).toBeCloseTo(2e9);
    expect(f.daysUntilFull).toBeCloseTo(7);
    expect(f.fullAt?.toISOString().slice(0, 10)).toBe('2026-11-11');
  });

  test('a shrinking disk never fills; an unknown size gives no date', () => {
    expect(
      forecastGrowth([
        { at: day(0), usedBytes: 5, sizeBytes: 10 },
        { at: day(1), usedBytes: 4 },
      ]).fullAt,
    ).toBeUndefined();
    expect(
      forecastGrowth([
        { at: day(0), usedBytes: 1 },
        { at: day(1), usedBytes: 2 },
      ]).daysUntilFull,
    ).toBeUndefined();
  });

  test('needs two samples at different times', () => {
    expect(() => forecastGrowth([{ at: day(0), usedBytes: 1 }])).toThrow(/at least 2/);
    expect(() =>
      forecastGrowth([
        { at: day(0), usedBytes: 1 },
        { at: day(0), usedBytes: 2 },
      ]),
    ).toThrow(/same time/);
  });

  test('reads CSV (with a header) and the JSON of aws cloudwatch get-metric-data', () => {
    const csv = parseUsageSamples(
      'timestamp,usedBytes,sizeBytes\n2026-11-01T00:00:00Z,100,1000\n2026-11-02T00:00:00Z,200,1000\n',
    );
    expect(csv.map((s) => [s.usedBytes, s.sizeBytes])).toEqual([
      [100, 1000],
      [200, 1000],
    ]);
    const json = JSON.stringify({
      MetricDataResults: [
        { Id: 'free', Timestamps: ['2026-11-02T00:00:00Z', '2026-11-01T00:00:00Z'], Values: [700, 800] },
        { Id: 'total', Timestamps: ['2026-11-02T00:00:00Z', '2026-11-01T00:00:00Z'], Values: [1000, 1000] },
      ],
    });
    expect(parseUsageSamples(json).map((s) => s.usedBytes)).toEqual([200, 300]);
    expect(() => parseUsageSamples('2026-11-01T00:00:00Z,lots')).toThrow(/metrics line 1/);
    expect(() => parseUsageSamples('{"MetricDataResults": []}')).toThrow(/Id "used"/);
  });
});

describe('npx stemedb-capacity', () => {
  test("prints the pilot's table and recommends 20 GiB", () => {
    const r = cli('--daily-assertions', '1000', '--total-assertions', '100000');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\| WAL .*\|\s+70 MB \|/);
    expect(r.stdout).toMatch(/\| Backups .*\|\s+3,990 MB \|/);
    expect(r.stdout).toContain('Provision 20 GiB (4x headroom over 4,610 MB).');
  });

  test('forecasts from a metrics file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'capacity-')), 'usage.csv');
    writeFileSync(file, '2026-11-01T00:00:00Z,10000000000\n2026-11-03T00:00:00Z,14000000000\n');
    const r = cli('--from-metrics', file, '--size-gib', '20');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('growth: 2,000 MB/day');
    expect(r.stdout).toMatch(/full in 3\.7 days, around 2026-11-06/);
  });

  test.each([
    [
      ['--daily-assertions', '-5', '--total-assertions', '1'],
      '--daily-assertions is "-5"; expected a number ≥ 0',
    ],
    [['--daily-assertions', 'many', '--total-assertions', '1'], '--daily-assertions is "many"'],
    [['--total-assertions', '1'], '--daily-assertions and --total-assertions are required'],
    [['--daily-assertions'], '--daily-assertions needs a value'],
    [['--bogus', '1'], 'unknown option --bogus'],
    [['--from-metrics', '/nonexistent/usage.csv'], '--from-metrics /nonexistent/usage.csv: ENOENT'],
  ])('bad input %j: one line naming it, exit 2', (args, message) => {
    const r = cli(...args);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(message);
  });
});
