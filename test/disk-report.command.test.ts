import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNBOOK_THRESHOLDS } from '../contracts/thresholds';
import type { CommandDocumentContent } from '../lib/command-document';
import {
  ParameterValidationError,
  runCommandDocument,
  synthesizeCommandDocument,
} from './support/command-document-runner';
import { checksumTree, dfBytes, LoopDeviceLab, type LoopDisk } from './support/loop-device';

/**
 * DiskReport (runbook Quick Diagnosis), run from the synthesized document on real loop-device
 * filesystems shaped for each branch of the runbook's diagnosis tree.
 */

let doc: CommandDocumentContent;
let work: string;
const lab = new LoopDeviceLab('disk-report-');

async function report(mountPoint: string, extra: Record<string, string> = {}) {
  const r = await runCommandDocument(doc, { MountPoint: mountPoint, ...extra });
  expect(r.exitCode, r.stderr).toBe(0);
  if (r.lastJson === undefined) throw new Error(`no JSON line in: ${r.stdout}`);
  return r.lastJson;
}

function mp(disk: LoopDisk): string {
  if (disk.mountPoint === undefined) throw new Error('disk is not mounted');
  return disk.mountPoint;
}

/** Allocates `path` so that the filesystem reaches about `percent` used (df's Use%). */
function fillTo(mountPoint: string, percent: number, path: string): void {
  const df = dfBytes(mountPoint);
  const want = Math.floor(((df.used + df.avail) * percent) / 100) - df.used;
  execFileSync('fallocate', ['-l', String(want), path]);
}

/** A small ext4 with `wal/` and `db/` directories. */
function dataDisk(mkfsArgs: string[] = []): LoopDisk {
  const disk = lab.createDisk({ sizeMiB: 64, fs: 'ext4', mkfsArgs });
  mkdirSync(join(mp(disk), 'wal'));
  mkdirSync(join(mp(disk), 'db'));
  return disk;
}

/** Every entry under `dir` with its size and mtime: to prove a run changed nothing. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const full = join(d, name);
      const st = statSync(full);
      out[full] = `${st.size}:${st.mtimeMs}:${st.mode}`;
      if (st.isDirectory()) walk(full);
    }
  };
  walk(dir);
  return out;
}

beforeAll(() => {
  doc = synthesizeCommandDocument('DiskReport');
  work = mkdtempSync(join(tmpdir(), 'disk-report-test-'));
});
afterAll(() => {
  lab.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('DiskReport figures', () => {
  let disk: LoopDisk;
  let json: Record<string, unknown>;

  beforeAll(async () => {
    disk = dataDisk();
    for (let i = 0; i < 3; i++)
      writeFileSync(join(mp(disk), 'wal', `seg-${i}.log`), Buffer.alloc(4_000_000, 1));
    execFileSync('touch', ['-d', '10 days ago', join(mp(disk), 'wal', 'seg-0.log')]);
    writeFileSync(join(mp(disk), 'db', 'data.sst'), Buffer.alloc(2_000_000, 2));
    execFileSync('sync');
    json = await report(mp(disk));
  });

  it('reports df and df -i figures as numbers that match df', () => {
    const df = dfBytes(mp(disk));
    expect(json).toMatchObject({
      sizeBytes: df.size,
      usedBytes: df.used,
      availBytes: df.avail,
      filesystem: 'ext4',
    });
    for (const key of [
      'usedPercent',
      'inodesTotal',
      'inodesFree',
      'inodesFreePercent',
      'walBytes',
      'dbBytes',
    ]) {
      expect(typeof json[key], key).toBe('number');
    }
    expect(json.usedPercent).toBeCloseTo((df.used * 100) / (df.used + df.avail), 1);
  });

  it('measures the WAL and DB directories and the oldest WAL segment age', () => {
    expect(json.walBytes).toBeGreaterThanOrEqual(12_000_000);
    expect(json.dbBytes).toBeGreaterThanOrEqual(2_000_000);
    expect(json.walSegments).toBe(3);
    expect(json.oldestWalAgeDays).toBeGreaterThan(9.9);
    expect(json.oldestWalAgeDays).toBeLessThan(10.1);
  });

  it('lists the largest directories, biggest first', () => {
    const dirs = json.largestDirs as Array<{ path: string; bytes: number }>;
    expect(dirs[0]?.path).toBe(join(mp(disk), 'wal'));
    expect(dirs[1]?.path).toBe(join(mp(disk), 'db'));
  });

  it('counts a disk below the Validation levels as recovered', () => {
    expect(json.recovered).toBe(true);
  });

  it('takes the Validation levels from parameters', async () => {
    const strict = await report(mp(disk), { RecoveredUsedPercent: '5' });
    expect(strict.recovered).toBe(false);
  });

  it('prints the human report (df -h, df -i, du) before the JSON line', async () => {
    const r = await runCommandDocument(doc, { MountPoint: mp(disk) });
    expect(r.stdout).toMatch(/== df -h [\s\S]*Use%[\s\S]*== df -i [\s\S]*IUse%[\s\S]*== du -sh WAL and DB/);
  });
});

describe('DiskReport diagnosis tree', () => {
  it('suggests EmergencyCleanup on a 100% full filesystem and changes nothing there', async () => {
    const disk = lab.createDisk({ sizeMiB: 320, fs: 'xfs' });
    mkdirSync(join(mp(disk), 'wal'));
    writeFileSync(join(mp(disk), 'wal', 'seg-0.log'), 'x'.repeat(100_000));
    lab.fill(mp(disk));
    const before = snapshot(mp(disk));
    const sums = checksumTree(mp(disk), (rel) => rel.startsWith('.fill-'));

    const json = await report(mp(disk));

    expect(json).toMatchObject({ suggestedSection: 'EmergencyCleanup', recovered: false, filesystem: 'xfs' });
    expect(json.usedPercent).toBeGreaterThan(RUNBOOK_THRESHOLDS.recoveredUsedPercent);
    expect(snapshot(mp(disk))).toEqual(before);
    expect(checksumTree(mp(disk), (rel) => rel.startsWith('.fill-'))).toEqual(sums);
  });

  it.each([
    ['WalCleanup', 'the WAL', 'wal/seg-0.log', 'db/data.sst'],
    ['CompactDatabase', 'the DB', 'db/data.sst', 'wal/seg-0.log'],
  ])('suggests %s when space is short and %s uses the most space', async (section, _what, filled, small) => {
    const disk = dataDisk();
    writeFileSync(join(mp(disk), small), Buffer.alloc(1_000_000, 1));
    fillTo(mp(disk), 90, join(mp(disk), filled));
    const json = await report(mp(disk));
    expect(json).toMatchObject({ suggestedSection: section, recovered: false });
  });

  it('suggests InodeCleanup when inodes are exhausted though space is free', async () => {
    const disk = dataDisk(['-N', '128']);
    const total = Number(
      execFileSync('df', ['--output=itotal', mp(disk)], { encoding: 'utf8' }).split('\n')[1],
    );
    for (let i = 0; existsSync(mp(disk)) && i < total; i++) {
      try {
        writeFileSync(join(mp(disk), 'wal', `tiny-${i}.tmp`), '');
      } catch {
        break; // ENOSPC: no inode left
      }
    }
    const json = await report(mp(disk));
    expect(json).toMatchObject({ suggestedSection: 'InodeCleanup', inodesExhausted: true, recovered: false });
    expect(json.usedPercent).toBeLessThan(RUNBOOK_THRESHOLDS.recoveredUsedPercent);
  });

  it('suggests ExpandVolume when space is short but neither WAL nor DB holds it', async () => {
    const disk = dataDisk();
    fillTo(mp(disk), 90, join(mp(disk), 'backups.tar'));
    const json = await report(mp(disk));
    expect(json).toMatchObject({ suggestedSection: 'ExpandVolume', recovered: false });
    expect(json.walBytes).toBeLessThan(10_000); // the empty directory itself
    expect(json.dbBytes).toBeLessThan(10_000);
  });

  it('takes the emergency level from a parameter', async () => {
    const disk = dataDisk();
    fillTo(mp(disk), 60, join(mp(disk), 'wal', 'seg-0.log'));
    const json = await report(mp(disk), { EmergencyUsedPercent: '50' });
    expect(json.suggestedSection).toBe('EmergencyCleanup');
  });
});

describe('DiskReport inputs', () => {
  it('uses WalDir and DbDir when given', async () => {
    const disk = dataDisk();
    mkdirSync(join(mp(disk), 'data', 'wal'), { recursive: true });
    writeFileSync(join(mp(disk), 'data', 'wal', 'a.log'), Buffer.alloc(500_000, 1));
    const json = await report(mp(disk), {
      WalDir: join(mp(disk), 'data', 'wal'),
      DbDir: join(mp(disk), 'data', 'db'),
    });
    expect(json).toMatchObject({ walSegments: 1, dbBytes: 0 });
    expect(json.walBytes).toBeGreaterThanOrEqual(500_000);
    expect(json.warnings).toEqual([expect.stringMatching(/DB directory .* does not exist/)]);
  });

  it('reports no WAL segment age when there is no WAL directory', async () => {
    const disk = lab.createDisk({ sizeMiB: 64, fs: 'ext4' });
    const json = await report(mp(disk));
    expect(json).toMatchObject({ walBytes: 0, walSegments: 0, oldestWalAgeDays: null });
  });

  it('refuses a directory that is not a mount point (exit 3)', async () => {
    const dir = join(work, 'not-a-mount');
    mkdirSync(dir);
    const r = await runCommandDocument(doc, { MountPoint: dir });
    expect(r.exitCode).toBe(3);
    expect(r.stderr.trim()).toBe(`disk-report: ${dir} is not a mount point`);
  });

  const marker = `/tmp/pwned-report-${process.pid}`;
  it.each([
    ['MountPoint', `$(touch ${marker})`],
    ['MountPoint', '/data/../etc'],
    ['WalDir', `/data/wal;touch ${marker}`],
    ['WalDir', '/data/../../etc'],
    ['DbDir', `\`touch ${marker}\``],
    ['DbDir', 'relative/db'],
    ['EmergencyUsedPercent', '101'],
    ['EmergencyUsedPercent', '9 8'],
    ['InodesExhaustedFree', '-1'],
    ['RecoveredUsedPercent', `80$(touch ${marker})`],
    ['RecoveredInodesFreePercent', '10\n'],
  ])('rejects %s %j before anything runs', async (name, value) => {
    await expect(runCommandDocument(doc, { MountPoint: '/data', [name]: value })).rejects.toBeInstanceOf(
      ParameterValidationError,
    );
    expect(existsSync(marker)).toBe(false);
  });

  it('declares the runbook thresholds as parameter defaults', () => {
    const p = doc.parameters ?? {};
    expect(p.RecoveredUsedPercent?.default).toBe(String(RUNBOOK_THRESHOLDS.recoveredUsedPercent));
    expect(p.RecoveredInodesFreePercent?.default).toBe(String(RUNBOOK_THRESHOLDS.recoveredInodesFreePercent));
    expect(p.InodesExhaustedFree?.default).toBe(String(RUNBOOK_THRESHOLDS.emergencyInodesFree));
    expect(p.InodesExhaustedFreePercent?.default).toBe(String(RUNBOOK_THRESHOLDS.inodeWarningFreePercent));
  });
});
