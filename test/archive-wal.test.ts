import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { parseUploadManifest, uploadManifestKey, verifiedManifestKey } from '../lambda/shared/wal-manifest';
import {
  DAY_MS,
  expectExit0,
  expectNothingLost,
  listKeys,
  localSegments,
  putObject,
  runArchive,
  runDelete,
  runVerify,
  sha256Hex,
  storedSha256,
  useArchiveTestBed,
  type WalTarget,
  writeSegment,
} from './support/wal-archive';

/**
 * The WAL archive pipeline (runbook §5C) end to end against moto_server with the real AWS CLI:
 * ArchiveWal and DeleteArchivedWal run from their synthesized Command documents through the local
 * SSM runner, verify-archive's logic runs with a real S3 client. Every scenario ends with the
 * check that each original segment is on disk or in S3 (body read back) with the same SHA-256.
 */

const bed = useArchiveTestBed('archive-wal-test-');

function segmentBody(i: number, bytes = 4096): Buffer {
  return Buffer.alloc(bytes, `segment ${i};`);
}

describe('ArchiveWal → verify-archive → DeleteArchivedWal', () => {
  it('archives old segments, verifies them in S3 and removes them locally, keeping the newest', async () => {
    const t = await bed.target();
    const originals = new Map<string, string>();
    const ages: Array<[string, number]> = [
      ['wal-000001.log', 40],
      ['wal 000002 with spaces.log', 35],
      ['wal-000003.log', 20],
      ['wal-000004.log', 10], // newest: old enough, but it is the segment being written
    ];
    ages.forEach(([name, age], i) => {
      originals.set(name, writeSegment(t.walDir, name, segmentBody(i, 10_000 + i), age));
    });

    const archive = expectExit0(await runArchive(t));
    expect(archive).toMatchObject({ status: 'ok', mode: 'batch', selected: 3, uploaded: 3, failed: 0 });
    expect(archive.skipped).toMatchObject({ newest: 1 });

    const verify = await runVerify(bed.s3, t);
    expect(verify).toMatchObject({
      status: 'verified',
      written: true,
      counts: { verified: 3, mismatched: 0 },
    });

    const del = expectExit0(await runDelete(t));
    expect(del).toMatchObject({ status: 'ok', deleted: 3, bytesFreed: 30_003, kept: 0 });

    expect([...localSegments(t.walDir).keys()]).toEqual(['wal-000004.log']);
    expect(await listKeys(bed.s3, t.bucket)).toEqual(
      [
        `${t.prefix}wal 000002 with spaces.log`,
        `${t.prefix}wal-000001.log`,
        `${t.prefix}wal-000003.log`,
        uploadManifestKey(t.prefix),
        verifiedManifestKey(t.prefix),
      ].sort(),
    );
    await expectNothingLost(bed.s3, t, originals);
  });

  it('keeps the newest segment by sub-second mtime, and every segment tied with it, within one second', async () => {
    // A crash right after rotation: the database is down (nothing holds the segment open) and
    // four segments were written in the same second. Whole-second mtimes tie them all.
    const t = await bed.target();
    const second = Math.floor(Date.now() / 1000) - 20 * 86_400;
    const originals = new Map<string, string>();
    originals.set('wal-000001.log', writeSegment(t.walDir, 'wal-000001.log', 'old', 30));
    const inSecond: Array<[string, number]> = [
      ['wal-000002.log', 0.1],
      ['wal-000003.log', 0.5],
      ['wal-000004.log', 0.9], // the newest
      ['wal-000005.log', 0.9], // tied with it to the nanosecond: kept as well
    ];
    for (const [name, fraction] of inSecond) {
      originals.set(name, writeSegment(t.walDir, name, `body of ${name}`, 0));
      utimesSync(join(t.walDir, name), second + fraction, second + fraction);
    }

    const archive = expectExit0(await runArchive(t));
    expect(archive).toMatchObject({ status: 'ok', selected: 3, uploaded: 3 });
    expect(archive.skipped).toMatchObject({ newest: 2 });
    expect(await listKeys(bed.s3, t.bucket)).not.toContain(`${t.prefix}wal-000004.log`);
    expect(await listKeys(bed.s3, t.bucket)).not.toContain(`${t.prefix}wal-000005.log`);
    expect((await runVerify(bed.s3, t)).counts).toMatchObject({ verified: 3 });
    expect(expectExit0(await runDelete(t))).toMatchObject({ deleted: 3 });
    expect([...localSegments(t.walDir).keys()].sort()).toEqual(['wal-000004.log', 'wal-000005.log']);
    await expectNothingLost(bed.s3, t, originals);
  });

  it('keeps and reports a file whose name is not UTF-8, and still archives every other segment', async () => {
    const t = await bed.target();
    const originals = new Map<string, string>();
    originals.set('wal-000001.log', writeSegment(t.walDir, 'wal-000001.log', 'one', 30));
    originals.set('wal-000002.log', writeSegment(t.walDir, 'wal-000002.log', 'two', 30));
    writeSegment(t.walDir, 'wal-newest.log', 'newest', 20);
    const badName = Buffer.concat([Buffer.from('wal-'), Buffer.from([0xff, 0xfe]), Buffer.from('.log')]);
    const badPath = Buffer.concat([Buffer.from(`${t.walDir}/`), badName]);
    writeFileSync(badPath, 'latin-1 named segment');
    utimesSync(badPath, Date.now() / 1000 - 30 * 86_400, Date.now() / 1000 - 30 * 86_400);

    const archive = expectExit0(await runArchive(t));
    expect(archive).toMatchObject({ status: 'ok', selected: 2, uploaded: 2, failed: 0 });
    expect(archive.skipped).toMatchObject({ nameNotUtf8: 1 });
    expect(archive.firstUnsafeNames).toEqual([{ name: 'wal-\\xFF\\xFE.log', reason: 'name is not UTF-8' }]);
    expect((await runVerify(bed.s3, t)).counts).toMatchObject({ verified: 2 });
    expect(expectExit0(await runDelete(t))).toMatchObject({ deleted: 2 });
    expect(readFileSync(badPath, 'utf8')).toBe('latin-1 named segment');
    expect(await listKeys(bed.s3, t.bucket)).toHaveLength(4); // two segments and two manifests
    unlinkSync(badPath); // checked above; the check below reads names as UTF-8 strings
    await expectNothingLost(bed.s3, t, originals);
  });

  it('writes a manifest with size, hex SHA-256 and status for every file it tried', async () => {
    const t = await bed.target();
    const sha = writeSegment(t.walDir, 'a.log', 'alpha', 30);
    writeSegment(t.walDir, 'b.log', 'newest', 20);
    expectExit0(await runArchive(t));

    const res = await bed.s3.send(
      new GetObjectCommand({ Bucket: t.bucket, Key: uploadManifestKey(t.prefix) }),
    );
    const parsed = parseUploadManifest((await res.Body?.transformToString()) ?? '');
    if (!parsed.ok) throw new Error(parsed.problems.join('; '));
    expect(parsed.manifest).toMatchObject({
      bucket: t.bucket,
      prefix: t.prefix,
      node: t.node,
      walDir: t.walDir,
    });
    expect(parsed.manifest.entries).toEqual([
      { key: `${t.prefix}a.log`, size: 5, sha256: sha, status: 'uploaded' },
    ]);
  });

  it('keeps a segment a process holds open and one modified minutes ago', async () => {
    const t = await bed.target();
    const originals = new Map<string, string>();
    originals.set('old.log', writeSegment(t.walDir, 'old.log', 'old', 2));
    originals.set('open.log', writeSegment(t.walDir, 'open.log', 'held open', 2));
    originals.set('fresh.log', writeSegment(t.walDir, 'fresh.log', 'two minutes old', 0));
    setMtime(join(t.walDir, 'fresh.log'), Date.now() - 2 * 60_000);
    originals.set('newest.log', writeSegment(t.walDir, 'newest.log', 'newest', 0));
    const fd = openSync(join(t.walDir, 'open.log'), 'r');
    try {
      const archive = expectExit0(await runArchive(t, { OlderThanDays: '0' }));
      expect(archive).toMatchObject({ selected: 1, uploaded: 1 });
      expect(archive.skipped).toMatchObject({ newest: 1, open: 1, tooRecent: 1 });
      await runVerify(bed.s3, t);
      expectExit0(await runDelete(t));
    } finally {
      closeSync(fd);
    }
    expect([...localSegments(t.walDir).keys()].sort()).toEqual(['fresh.log', 'newest.log', 'open.log']);
    expect(await listKeys(bed.s3, t.bucket)).not.toContain(`${t.prefix}open.log`);
    await expectNothingLost(bed.s3, t, originals);
  });

  it('does not delete a verified segment a process holds open, even through a bind mount', async () => {
    const t = await bed.target();
    const originals = new Map<string, string>();
    originals.set('a.log', writeSegment(t.walDir, 'a.log', 'alpha', 30));
    originals.set('b.log', writeSegment(t.walDir, 'b.log', 'beta', 30));
    writeSegment(t.walDir, 'newest.log', 'newest', 20);
    expectExit0(await runArchive(t));
    expect((await runVerify(bed.s3, t)).counts).toMatchObject({ verified: 2 });

    // The reader opened the segment through another path to the same directory.
    const alias = join(bed.root, `alias-${t.node}`);
    mkdirSync(alias);
    execFileSync('mount', ['--bind', t.walDir, alias]);
    let fd: number | undefined;
    try {
      fd = openSync(join(alias, 'b.log'), 'r');
      const del = expectExit0(await runDelete(t));
      expect(del).toMatchObject({ deleted: 1, kept: 1, keptByReason: { 'open by a process': 1 } });
    } finally {
      if (fd !== undefined) closeSync(fd);
      execFileSync('umount', [alias]);
    }
    expect([...localSegments(t.walDir).keys()].sort()).toEqual(['b.log', 'newest.log']);
    await expectNothingLost(bed.s3, t, originals);
  });

  it('skips a file that is mounted into WalDir from another filesystem', async () => {
    const t = await bed.target();
    const foreign = mkdtempSync(join('/dev/shm', 'archive-wal-foreign-'));
    const source = join(foreign, 'other-fs.log');
    writeSegment(foreign, 'other-fs.log', 'lives on tmpfs', 40);
    const mountPoint = join(t.walDir, 'other-fs.log');
    writeFileSync(mountPoint, '');
    writeSegment(t.walDir, 'seg.log', 'segment', 40);
    writeSegment(t.walDir, 'newest.log', 'newest', 20);
    execFileSync('mount', ['--bind', source, mountPoint]);
    try {
      const archive = expectExit0(await runArchive(t));
      expect(archive).toMatchObject({ uploaded: 1 });
      expect(archive.skipped).toMatchObject({ otherFilesystem: 1 });
      expect(await listKeys(bed.s3, t.bucket)).not.toContain(`${t.prefix}other-fs.log`);
    } finally {
      execFileSync('umount', [mountPoint]);
      rmSync(foreign, { recursive: true, force: true });
    }
  });

  it('neither uploads nor deletes a symlink to a file outside WalDir', async () => {
    const t = await bed.target();
    const outsideDir = join(bed.root, `outside-${t.node}`);
    mkdirSync(outsideDir);
    const outside = join(outsideDir, 'precious.log');
    writeFileSync(outside, 'not a WAL segment of this directory');
    const link = join(t.walDir, 'link.log');
    symlinkSync(outside, link);
    const old = new Date(Date.now() - 40 * DAY_MS);
    lutimesSync(link, old, old);
    const originals = new Map<string, string>();
    originals.set('seg.log', writeSegment(t.walDir, 'seg.log', 'segment', 40));
    writeSegment(t.walDir, 'newest.log', 'newest', 30);

    const archive = expectExit0(await runArchive(t));
    expect(archive).toMatchObject({ uploaded: 1 });
    expect(archive.skipped).toMatchObject({ symlinks: 1 });
    expect(await listKeys(bed.s3, t.bucket)).not.toContain(`${t.prefix}link.log`);
    await runVerify(bed.s3, t);

    // The verified segment is then replaced by a symlink to an identical file outside: kept.
    const twin = join(outsideDir, 'seg-twin.log');
    writeFileSync(twin, 'segment');
    unlinkSync(join(t.walDir, 'seg.log'));
    symlinkSync(twin, join(t.walDir, 'seg.log'));
    const del = expectExit0(await runDelete(t));
    expect(del).toMatchObject({ deleted: 0, kept: 1, keptByReason: { symlink: 1 } });

    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(t.walDir, 'seg.log')).isSymbolicLink()).toBe(true);
    expect(readFileSync(outside, 'utf8')).toBe('not a WAL segment of this directory');
    expect(readFileSync(twin, 'utf8')).toBe('segment');
    await expectNothingLost(bed.s3, t, originals);
  });

  it('counts a key holding the same content as archived and keeps and reports a conflicting segment', async () => {
    const t = await bed.target();
    const originals = new Map<string, string>();
    originals.set('same.log', writeSegment(t.walDir, 'same.log', 'same content', 30));
    originals.set('conflict.log', writeSegment(t.walDir, 'conflict.log', 'local content', 30));
    originals.set('new.log', writeSegment(t.walDir, 'new.log', 'not yet archived', 30));
    writeSegment(t.walDir, 'newest.log', 'newest', 20);
    await putObject(bed.s3, t.bucket, `${t.prefix}same.log`, 'same content');
    await putObject(bed.s3, t.bucket, `${t.prefix}conflict.log`, 'someone else wrote this');

    const archive = expectExit0(await runArchive(t));
    expect(archive).toMatchObject({ status: 'ok', uploaded: 1, alreadyArchived: 1, conflicts: 1 });
    expect(archive.firstConflicts).toEqual([
      { name: 'conflict.log', reason: 'the existing object has a different SHA-256 or size' },
    ]);

    const verify = await runVerify(bed.s3, t);
    expect(verify.counts).toMatchObject({ verified: 2, notArchived: 1 });
    expect(verify.notArchived).toMatchObject([{ key: `${t.prefix}conflict.log`, status: 'conflict' }]);

    const del = expectExit0(await runDelete(t));
    expect(del).toMatchObject({ deleted: 2 });
    expect([...localSegments(t.walDir).keys()].sort()).toEqual(['conflict.log', 'newest.log']);
    expect(await storedSha256(bed.s3, t.bucket, `${t.prefix}conflict.log`)).toBe(
      sha256Hex('someone else wrote this'),
    );
    await expectNothingLost(bed.s3, t, originals);
  });

  it('changes nothing anywhere in DryRun, in every phase', async () => {
    const t = await bed.target();
    const originals = new Map<string, string>();
    originals.set('first.log', writeSegment(t.walDir, 'first.log', 'first', 30));
    writeSegment(t.walDir, 'second.log', 'second', 29);
    expectExit0(await runArchive(t));
    await runVerify(bed.s3, t);
    // Now first.log is archived and verified but still on disk; second.log (no longer the newest)
    // and third.log are old enough and not archived.
    originals.set('second.log', localSegments(t.walDir).get('second.log') ?? '');
    originals.set('third.log', writeSegment(t.walDir, 'third.log', 'third', 25));
    writeSegment(t.walDir, 'newest.log', 'newest', 20);
    const before = { keys: await objectDigests(t), local: localSnapshot(t.walDir) };

    const archive = expectExit0(await runArchive(t, { DryRun: 'true' }));
    expect(archive).toMatchObject({ status: 'dry-run', uploaded: 0, wouldUpload: 2, alreadyArchived: 1 });
    const verify = await runVerify(bed.s3, t, { dryRun: 'true' });
    expect(verify).toMatchObject({ status: 'verified', written: false, dryRun: true });
    const del = expectExit0(await runDelete(t, { DryRun: 'true' }));
    expect(del).toMatchObject({ status: 'dry-run', wouldDelete: 1 });

    expect(await objectDigests(t)).toEqual(before.keys);
    expect(localSnapshot(t.walDir)).toEqual(before.local);
    await expectNothingLost(bed.s3, t, originals);
  });

  it('reports a refusal without failing when DryRun finds no manifest at all', async () => {
    const t = await bed.target();
    writeSegment(t.walDir, 'a.log', 'a', 30);
    writeSegment(t.walDir, 'b.log', 'b', 20);
    expectExit0(await runArchive(t, { DryRun: 'true' }));
    expect(await runVerify(bed.s3, t, { dryRun: true })).toMatchObject({ status: 'refused' });
    const del = expectExit0(await runDelete(t, { DryRun: 'true' }));
    expect(del).toMatchObject({ status: 'refused', deleted: 0 });
    expect(await listKeys(bed.s3, t.bucket)).toEqual([]);
  });
});

describe('ArchiveWal and the AWS CLI', () => {
  function standIn(name: string, script: string): NodeJS.ProcessEnv {
    const dir = join(bed.root, `bin-${name}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'aws'), script);
    chmodSync(join(dir, 'aws'), 0o755);
    return { PATH: `${dir}:${process.env.PATH ?? ''}` };
  }

  it('falls back to one aws process per file when aws is not a Python script, with the same result', async () => {
    const realAws = execFileSync('bash', ['-c', 'pyenv which aws 2>/dev/null || command -v aws'], {
      encoding: 'utf8',
    }).trim();
    const t = await bed.target(standIn('wrapper', `#!/usr/bin/env bash\nexec ${realAws} "$@"\n`));
    const originals = new Map<string, string>();
    originals.set('one.log', writeSegment(t.walDir, 'one.log', 'one', 30));
    originals.set('two words.log', writeSegment(t.walDir, 'two words.log', 'two', 30));
    originals.set('same.log', writeSegment(t.walDir, 'same.log', 'same', 30));
    originals.set('clash.log', writeSegment(t.walDir, 'clash.log', 'local', 30));
    writeSegment(t.walDir, 'newest.log', 'newest', 20);
    await putObject(bed.s3, t.bucket, `${t.prefix}same.log`, 'same');
    await putObject(bed.s3, t.bucket, `${t.prefix}clash.log`, 'remote');

    const archive = expectExit0(await runArchive(t));
    expect(archive).toMatchObject({ mode: 'per-file-cli', uploaded: 2, alreadyArchived: 1, conflicts: 1 });
    expect((await runVerify(bed.s3, t)).counts).toMatchObject({ verified: 3, mismatched: 0 });
    expect(expectExit0(await runDelete(t))).toMatchObject({ deleted: 3 });
    expect([...localSegments(t.walDir).keys()].sort()).toEqual(['clash.log', 'newest.log']);
    await expectNothingLost(bed.s3, t, originals);
  });

  it('keeps and reports a name that is not UTF-8 in per-file mode too, archiving the rest', async () => {
    const realAws = execFileSync('bash', ['-c', 'pyenv which aws 2>/dev/null || command -v aws'], {
      encoding: 'utf8',
    }).trim();
    const t = await bed.target(standIn('wrapper-utf8', `#!/usr/bin/env bash\nexec ${realAws} "$@"\n`));
    writeSegment(t.walDir, 'one.log', 'one', 30);
    writeSegment(t.walDir, 'newest.log', 'newest', 20);
    const badPath = Buffer.concat([
      Buffer.from(`${t.walDir}/bad-`),
      Buffer.from([0xc0, 0xaf]),
      Buffer.from('\n.log'),
    ]);
    writeFileSync(badPath, 'overlong slash and a newline');
    utimesSync(badPath, Date.now() / 1000 - 30 * 86_400, Date.now() / 1000 - 30 * 86_400);

    const archive = expectExit0(await runArchive(t));
    expect(archive).toMatchObject({ mode: 'per-file-cli', uploaded: 1, failed: 0 });
    expect(archive.skipped).toMatchObject({ nameNotUtf8: 1, controlCharacterInName: 0 });
    expect(archive.firstUnsafeNames).toEqual([
      { name: 'bad-\\xC0\\xAF\\x0A.log', reason: 'name is not UTF-8' },
    ]);
    expect(readFileSync(badPath, 'utf8')).toBe('overlong slash and a newline');
  });

  it('fails with a clear message when the aws CLI is missing', async () => {
    const t = await bed.target({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
    writeSegment(t.walDir, 'a.log', 'a', 30);
    const r = await runArchive(t);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/the aws CLI is not installed/);
  });

  it('fails with a clear message when the aws CLI cannot do create-only SHA-256 puts', async () => {
    const old = standIn(
      'old',
      [
        '#!/usr/bin/env bash',
        'case "$*" in',
        '  *generate-cli-skeleton*) echo \'{"Bucket": "", "Key": "", "Body": ""}\' ;;',
        '  --version) echo "aws-cli/1.18.69 Python/3.8.10 Linux botocore/1.17.62" ;;',
        '  *) exit 255 ;;',
        'esac',
        '',
      ].join('\n'),
    );
    const t = await bed.target(old);
    writeSegment(t.walDir, 'a.log', 'a', 30);
    const r = await runArchive(t);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/aws-cli\/1\.18\.69.* is too old: put-object lacks --if-none-match/);
    expect(await listKeys(bed.s3, t.bucket)).toEqual([]);
  });
});

function setMtime(path: string, ms: number): void {
  const t = new Date(ms);
  lutimesSync(path, t, t);
}

/** Key → SHA-256 of the body, for every object in the target's bucket. */
async function objectDigests(t: WalTarget): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const key of await listKeys(bed.s3, t.bucket)) out[key] = await storedSha256(bed.s3, t.bucket, key);
  return out;
}

/** Name → SHA-256 and mtime of every file in the directory. */
function localSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, sha] of localSegments(dir)) {
    out[name] = `${sha} ${lstatSync(join(dir, name)).mtimeMs}`;
  }
  expect(existsSync(dir)).toBe(true);
  return out;
}
