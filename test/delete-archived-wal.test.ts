import { utimesSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { verifiedManifestKey } from '../lambda/shared/wal-manifest';
import {
  expectExit0,
  expectNothingLost,
  localSegments,
  oldSegmentsAndNewest,
  putObject,
  runArchive,
  runDelete,
  runVerify,
  sha256Hex,
  useArchiveTestBed,
  useS3Proxies,
  writeSegment,
} from './support/wal-archive';

/**
 * The delete phase is a second layer behind the bucket policy and the verify-archive Lambda: even
 * with a verified manifest that names them, it never deletes the newest segment (nor one tied with
 * it to the nanosecond), and it deletes a segment only while S3 still lists its key with the
 * verified size (one ListObjectsV2 per run, paged; see the script's header for why not a
 * HeadObject per file).
 */

const bed = useArchiveTestBed('delete-archived-wal-');

async function getText(bucket: string, key: string): Promise<string> {
  const res = await bed.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await res.Body?.transformToString()) ?? '';
}

describe('DeleteArchivedWal keeps the newest segment itself', () => {
  it('never deletes the newest segment, or one tied with it, even when the verified manifest names them', async () => {
    const t = await bed.target();
    const second = Math.floor(Date.now() / 1000) - 20 * 86_400;
    const originals = new Map<string, string>();
    originals.set('wal-000001.log', writeSegment(t.walDir, 'wal-000001.log', 'old', 30));
    for (const [name, fraction] of [
      ['wal-000002.log', 0.5],
      ['wal-000003.log', 0.9],
      ['wal-000004.log', 0.9],
    ] as const) {
      originals.set(name, writeSegment(t.walDir, name, `body of ${name}`, 0));
      utimesSync(join(t.walDir, name), second + fraction, second + fraction);
    }
    expect(expectExit0(await runArchive(t))).toMatchObject({ uploaded: 2 });
    expect((await runVerify(bed.s3, t)).counts).toMatchObject({ verified: 2 });

    // The first layer fails: the newest segments are in S3 and a verified manifest names them.
    const verified = JSON.parse(await getText(t.bucket, verifiedManifestKey(t.prefix))) as {
      entries: object[];
    };
    for (const name of ['wal-000003.log', 'wal-000004.log']) {
      const body = `body of ${name}`;
      await putObject(bed.s3, t.bucket, `${t.prefix}${name}`, body);
      verified.entries.push({
        key: `${t.prefix}${name}`,
        size: body.length,
        sha256: sha256Hex(body),
        status: 'verified',
      });
    }
    await putObject(bed.s3, t.bucket, verifiedManifestKey(t.prefix), JSON.stringify(verified));

    const del = expectExit0(await runDelete(t));
    expect(del).toMatchObject({ deleted: 2, kept: 2, keptByReason: { 'newest segment': 2 } });
    expect([...localSegments(t.walDir).keys()].sort()).toEqual(['wal-000003.log', 'wal-000004.log']);
    await expectNothingLost(bed.s3, t, originals);
  });
});

describe('DeleteArchivedWal re-checks S3', () => {
  it('keeps and reports a verified segment whose key S3 no longer holds, or holds with another size', async () => {
    const t = await bed.target();
    const originals = oldSegmentsAndNewest(t, 4, 1024);
    expectExit0(await runArchive(t));
    expect((await runVerify(bed.s3, t)).counts).toMatchObject({ verified: 4 });
    // After verification: one object deleted (a delete marker in the versioned bucket), one replaced.
    await bed.s3.send(new DeleteObjectCommand({ Bucket: t.bucket, Key: `${t.prefix}wal-000000.log` }));
    await putObject(bed.s3, t.bucket, `${t.prefix}wal-000001.log`, 'truncated');
    const keptByReason = { 'not in S3': 1, 'size in S3 differs from the verified archive': 1 };

    const dry = expectExit0(await runDelete(t, { DryRun: 'true' }));
    expect(dry).toMatchObject({ status: 'dry-run', wouldDelete: 2, kept: 2, keptByReason });
    expect(localSegments(t.walDir)).toEqual(originals);

    const del = expectExit0(await runDelete(t));
    expect(del).toMatchObject({ status: 'ok', deleted: 2, kept: 2, keptByReason });
    expect(del.firstKept).toEqual(
      expect.arrayContaining([
        { name: 'wal-000000.log', reason: 'not in S3' },
        { name: 'wal-000001.log', reason: 'size in S3 differs from the verified archive' },
      ]),
    );
    expect([...localSegments(t.walDir).keys()].sort()).toEqual([
      'wal-000000.log',
      'wal-000001.log',
      'wal-newest.log',
    ]);
    originals.delete('wal-000001.log'); // its key now holds other bytes; the local copy is kept
    await expectNothingLost(bed.s3, t, originals);
  });

  describe('when S3 refuses the listing', () => {
    const startProxy = useS3Proxies();

    /** A pass-through proxy to moto_server that answers every ListObjectsV2 with 403 AccessDenied. */
    async function denyListing(): Promise<string> {
      const proxy = await startProxy(bed.moto.port, {
        intercept(req, res) {
          if (req.method !== 'GET' || !(req.url ?? '').includes('list-type=2')) return false;
          res.writeHead(403, { 'content-type': 'application/xml' });
          res.end('<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
          return true;
        },
      });
      return proxy.endpoint;
    }

    it('deletes nothing and says why', async () => {
      const t = await bed.target({ AWS_MAX_ATTEMPTS: '1' });
      const originals = oldSegmentsAndNewest(t, 3, 1024);
      expectExit0(await runArchive(t));
      expect((await runVerify(bed.s3, t)).counts).toMatchObject({ verified: 3 });
      const del = await runDelete({ ...t, endpoint: await denyListing() });
      expect(del.exitCode).toBe(1);
      expect(del.lastJson).toMatchObject({ status: 'refused', deleted: 0 });
      expect(del.stderr).toMatch(/cannot list s3:\/\/.* to re-check the verified keys: .*AccessDenied/);
      expect(localSegments(t.walDir)).toEqual(originals);
    });
  });
});
