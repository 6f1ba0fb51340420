import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { uploadManifestKey, verifiedManifestKey } from '../lambda/shared/wal-manifest';
import { dfBytes, LoopDeviceLab } from './support/loop-device';
import { type MotoServer, startMotoServer } from './support/moto-server';
import {
  expectExit0,
  listKeys,
  localSegments,
  lostSegments,
  newBucket,
  oldSegmentsAndNewest,
  putObject,
  runArchive,
  runDelete,
  runVerify,
  s3Client,
  useArchiveTestBed,
  useS3Proxies,
  type WalTarget,
  walTarget,
} from './support/wal-archive';

/**
 * Faults in the WAL archive pipeline, each ending with the "nothing lost" check: the S3 server
 * stopping half-way through an upload, a checksum mismatch at verification, missing, foreign and
 * stale manifests, local files changed after verification, and a WAL filesystem that is 100% full.
 */

const bed = useArchiveTestBed('archive-wal-faults-');

async function expectNothingLost(
  t: WalTarget,
  originals: ReadonlyMap<string, string>,
  server = bed.s3,
): Promise<void> {
  expect(await lostSegments(originals, t.walDir, server, t.bucket, t.prefix)).toEqual([]);
}

describe('S3 stops half-way through an upload run', () => {
  let own: MotoServer | undefined;

  afterEach(async () => {
    await own?.stop();
  });
  // Registered after the moto_server's stop, so the proxy closes first.
  const startProxy = useS3Proxies();

  /**
   * A pass-through proxy to its own moto_server that, once `after` segment PUTs have been
   * answered, stops moto_server and itself: every later request finds nothing listening.
   */
  async function stoppingProxy(server: MotoServer, after: number): Promise<string> {
    let puts = 0;
    let stopped = false;
    const p = await startProxy(server.port, {
      answered(req, statusCode, res) {
        const segmentPut = req.method === 'PUT' && !(req.url ?? '').includes('_manifest');
        if (segmentPut && statusCode === 200) puts += 1;
        if (puts >= after && !stopped) {
          stopped = true;
          res.on('finish', () => {
            p.close();
            void server.stop();
          });
        }
      },
    });
    return p.endpoint;
  }

  it('writes no manifest, exits non-zero and so nothing is deleted', async () => {
    own = await startMotoServer();
    const ownS3 = s3Client(own);
    const bucket = await newBucket(ownS3);
    const endpoint = await stoppingProxy(own, 5);
    // One attempt per request (standard AWS setting, read by the CLI and botocore) keeps the test short.
    const t = { ...walTarget(own, bed.root, bucket, 'node-stopped', { AWS_MAX_ATTEMPTS: '1' }), endpoint };
    const originals = oldSegmentsAndNewest(t, 30, 64 * 1024);

    const archive = await runArchive(t, { Concurrency: '2' });
    expect(archive.exitCode).toBe(1);
    expect(archive.stderr).toMatch(/could not write the manifest/);

    await expect(runVerify(s3Client(own), t)).rejects.toThrow();
    const del = await runDelete(t);
    expect(del.exitCode).toBe(1);
    expect(localSegments(t.walDir)).toEqual(originals);
    await expectNothingLost(t, originals, undefined);
  });
});

describe('verification and deletion faults', () => {
  it('keeps a segment whose archived copy fails verification', async () => {
    const t = await bed.target();
    const originals = oldSegmentsAndNewest(t, 4, 2048);
    expectExit0(await runArchive(t));
    // The stored object changes after upload (corruption, a foreign writer): the checksum no longer matches.
    await putObject(bed.s3, t.bucket, `${t.prefix}wal-000001.log`, Buffer.alloc(2048, 'corrupted '));

    const verify = await runVerify(bed.s3, t);
    expect(verify.counts).toMatchObject({ verified: 3, mismatched: 1 });
    expect(verify.mismatches).toMatchObject([
      { key: `${t.prefix}wal-000001.log`, reason: 'checksum-mismatch' },
    ]);
    expect(expectExit0(await runDelete(t))).toMatchObject({ deleted: 3 });
    expect([...localSegments(t.walDir).keys()].sort()).toEqual(['wal-000001.log', 'wal-newest.log']);
    await expectNothingLost(t, originals);
  });

  it('keeps local files that changed after verification', async () => {
    const t = await bed.target();
    const originals = oldSegmentsAndNewest(t, 3, 2048);
    expectExit0(await runArchive(t));
    await runVerify(bed.s3, t);
    writeFileSync(join(t.walDir, 'wal-000000.log'), Buffer.alloc(2048, 'same size, new bytes '));
    writeFileSync(join(t.walDir, 'wal-000001.log'), 'shorter');
    // The segment being written is still the newest (a rewritten old file must not become it).
    const later = Date.now() / 1000 + 1;
    utimesSync(join(t.walDir, 'wal-newest.log'), later, later);
    const changed = localSegments(t.walDir);

    const del = expectExit0(await runDelete(t));
    expect(del).toMatchObject({
      deleted: 1,
      keptByReason: {
        'sha256 differs from the verified archive': 1,
        'size differs from the verified archive': 1,
      },
    });
    expect(localSegments(t.walDir).get('wal-000000.log')).toBe(changed.get('wal-000000.log'));
    originals.delete('wal-000000.log');
    originals.delete('wal-000001.log');
    await expectNothingLost(t, originals);
  });

  it('deletes nothing when there is no verified manifest', async () => {
    const t = await bed.target();
    const originals = oldSegmentsAndNewest(t, 3, 2048);
    expectExit0(await runArchive(t));
    const del = await runDelete(t);
    expect(del.exitCode).toBe(1);
    expect(del.lastJson).toMatchObject({ status: 'refused', deleted: 0 });
    expect(del.stderr).toMatch(/no verified manifest/);
    expect(localSegments(t.walDir)).toEqual(originals);
  });

  it('deletes nothing when the verified manifest belongs to another node', async () => {
    const t = await bed.target();
    const other = await bed.target();
    const originals = oldSegmentsAndNewest(t, 3, 2048);
    oldSegmentsAndNewest(other, 3, 2048);
    for (const x of [t, other]) {
      expectExit0(await runArchive(x));
      await runVerify(bed.s3, x);
    }
    // Node 1's verified manifest replaced by node 2's (same file names, other prefix).
    const foreign = await getText(other.bucket, verifiedManifestKey(other.prefix));
    await putObject(bed.s3, t.bucket, verifiedManifestKey(t.prefix), foreign);
    const del = await runDelete(t);
    expect(del.exitCode).toBe(1);
    expect(del.stderr).toMatch(/unusable: it is for bucket|unusable: it is for prefix/);
    expect(localSegments(t.walDir)).toEqual(originals);
  });

  it('deletes nothing when a new upload run has not been verified yet', async () => {
    const t = await bed.target();
    const originals = oldSegmentsAndNewest(t, 3, 2048);
    expectExit0(await runArchive(t));
    await runVerify(bed.s3, t);
    expectExit0(await runArchive(t)); // a second run: new runId, its verification never ran
    const del = await runDelete(t);
    expect(del.exitCode).toBe(1);
    expect(del.stderr).toMatch(/verifies run .*but the latest upload is run/);
    expect(localSegments(t.walDir)).toEqual(originals);
  });

  it('deletes nothing when the upload manifest is missing', async () => {
    const t = await bed.target();
    const originals = oldSegmentsAndNewest(t, 2, 2048);
    await putObject(
      bed.s3,
      t.bucket,
      verifiedManifestKey(t.prefix),
      JSON.stringify({
        kind: 'stemedb-wal-verified-manifest',
        version: 1,
        runId: 'r',
        node: t.node,
        bucket: t.bucket,
        prefix: t.prefix,
        entries: [],
      }),
    );
    const del = await runDelete(t);
    expect(del.exitCode).toBe(1);
    expect(del.stderr).toMatch(/no upload manifest/);
    expect(await listKeys(bed.s3, t.bucket)).not.toContain(uploadManifestKey(t.prefix));
    expect(localSegments(t.walDir)).toEqual(originals);
  });
});

describe('a tampered verified manifest', () => {
  let t: WalTarget;
  let originals: Map<string, string>;
  let verified: Record<string, unknown>;

  // One archived and verified node; each case replaces its verified manifest with a tampered copy.
  beforeAll(async () => {
    t = await bed.target();
    originals = oldSegmentsAndNewest(t, 3, 2048);
    expectExit0(await runArchive(t));
    await runVerify(bed.s3, t);
    verified = JSON.parse(await getText(t.bucket, verifiedManifestKey(t.prefix))) as Record<string, unknown>;
  });

  it.each([
    ['another prefix', (m: Record<string, unknown>) => ({ ...m, prefix: 'wal/someone-else/' })],
    ['another bucket', (m: Record<string, unknown>) => ({ ...m, bucket: 'another-bucket' })],
    ['an older upload run', (m: Record<string, unknown>) => ({ ...m, runId: 'an-earlier-run' })],
    [
      'a key outside the prefix',
      (m: Record<string, unknown>) => ({
        ...m,
        entries: [
          ...(m.entries as object[]),
          { key: 'wal/x/../../etc.log', size: 1, sha256: 'a'.repeat(64), status: 'verified' },
        ],
      }),
    ],
    [
      'a file name with a control character',
      (m: Record<string, unknown>) => ({
        ...m,
        entries: [
          { key: `${t.prefix}wal-000000.log\n`, size: 1, sha256: 'a'.repeat(64), status: 'verified' },
        ],
      }),
    ],
    [
      'a size that is not a whole number',
      (m: Record<string, unknown>) => ({
        ...m,
        entries: (m.entries as Array<Record<string, unknown>>).map((e) => ({ ...e, size: '$(reboot)' })),
      }),
    ],
    ['another kind of document', (m: Record<string, unknown>) => ({ ...m, kind: 'something-else' })],
  ])('deletes nothing when it is for %s', async (_what, tamper) => {
    await putObject(bed.s3, t.bucket, verifiedManifestKey(t.prefix), JSON.stringify(tamper(verified)));
    const del = await runDelete(t);
    expect(del.exitCode).toBe(1);
    expect(del.lastJson).toMatchObject({ status: 'refused', deleted: 0 });
    expect(localSegments(t.walDir)).toEqual(originals);
  });

  it('deletes nothing when it is not JSON', async () => {
    await putObject(bed.s3, t.bucket, verifiedManifestKey(t.prefix), 'rm -rf /');
    const del = await runDelete(t);
    expect(del.exitCode).toBe(1);
    expect(del.stderr).toMatch(/not valid JSON/);
    expect(localSegments(t.walDir)).toEqual(originals);
  });
});

describe('a WAL filesystem that is 100% full', () => {
  const lab = new LoopDeviceLab('archive-wal-full-');
  afterAll(() => lab.cleanup());

  it('archives, verifies and deletes, freeing space without writing to the full disk', async () => {
    const disk = lab.createDisk({ sizeMiB: 64, fs: 'ext4', mkfsArgs: ['-m', '0'] });
    const mount = disk.mountPoint ?? '';
    const bucket = await bed.newBucket();
    const t: WalTarget = {
      ...walTarget(bed.moto, bed.root, bucket, 'node-full'),
      walDir: join(mount, 'wal'),
    };
    mkdirSync(t.walDir);
    const originals = oldSegmentsAndNewest(t, 8, 1024 * 1024);
    const filled = lab.fill(mount);
    expect(filled.availBytes).toBeLessThan(4096); // not one block left
    expect(() => writeFileSync(join(mount, 'probe'), Buffer.alloc(8192))).toThrow(/ENOSPC/);

    expect(expectExit0(await runArchive(t))).toMatchObject({ uploaded: 8, failed: 0 });
    expect(dfBytes(mount).avail).toBe(filled.availBytes); // the upload wrote nothing there
    expect((await runVerify(bed.s3, t)).counts).toMatchObject({ verified: 8 });
    const del = expectExit0(await runDelete(t));
    expect(del).toMatchObject({
      deleted: 8,
      bytesFreed: 8 * 1024 * 1024,
      freeBytesBefore: filled.availBytes,
    });
    expect(dfBytes(mount).avail).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    await expectNothingLost(t, originals);
  });
});

async function getText(bucket: string, key: string): Promise<string> {
  const res = await bed.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await res.Body?.transformToString()) ?? '';
}
