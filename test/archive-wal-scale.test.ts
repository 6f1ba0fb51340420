import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  expectExit0,
  localSegments,
  lostSegments,
  runArchive,
  runDelete,
  runVerify,
  setAgeDays,
  sha256Hex,
  useArchiveTestBed,
  walTarget,
} from './support/wal-archive';

/**
 * Many small WAL segments (the inode-exhaustion shape) through the whole pipeline: one upload
 * helper process, not one CLI process per file, with memory bounded by the concurrency, not the
 * count. The same pipeline runs twice on one moto_server, with a small and a ten times larger
 * count: both lose nothing, and the upload helper's peak RSS does not grow with the count.
 * Files are small (4 KiB) so the test measures the per-file path. The 10,000 × 64 KiB shape (and
 * its time against the runbook's `aws s3 cp` loop) is `npm run bench -- archive-wal`.
 */

const SMALL = 300;
const LARGE = 3_000;
/** Absolute ceiling of the upload helper's peak RSS (python3 + boto3 + 16 threads). */
const MAX_HELPER_RSS_KIB = 160 * 1024;
/** Bytes of each segment: holding the files' contents would add 10.5 MiB between the two runs. */
const SEGMENT_BYTES = 4096;
/**
 * What 2,700 more files may add to the helper's peak RSS (measured: about 0.5 MiB). Its per-file
 * state is a result line written as it goes; retaining more than ~780 bytes per file (a future,
 * a result object, the file's contents) would exceed it.
 */
const MAX_RSS_GROWTH_KIB = 2 * 1024;

const bed = useArchiveTestBed('archive-wal-scale-');

/** Archives, verifies and deletes `count` small segments; returns the helper's peak RSS. */
async function pipeline(count: number, node: string): Promise<number> {
  const t = walTarget(bed.moto, bed.root, await bed.newBucket(), node);
  const originals = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const name = `wal-${String(i).padStart(8, '0')}.log`;
    const body = `segment ${i}\n`.padEnd(SEGMENT_BYTES, '.');
    const path = join(t.walDir, name);
    writeFileSync(path, body);
    setAgeDays(path, 30);
    originals.set(name, sha256Hex(body));
  }
  writeFileSync(join(t.walDir, 'wal-newest.log'), 'newest');

  const archive = expectExit0(await runArchive(t, { Concurrency: '16' }, { timeoutMs: 300_000 }));
  expect(archive).toMatchObject({ mode: 'batch', selected: count, uploaded: count, failed: 0 });
  expect(archive.helperMaxRssKiB).toBeLessThan(MAX_HELPER_RSS_KIB);

  const verify = await runVerify(bed.s3, t);
  expect(verify.counts).toMatchObject({ verified: count, mismatched: 0 });

  const del = expectExit0(await runDelete(t, {}, { timeoutMs: 300_000 }));
  expect(del).toMatchObject({ deleted: count, kept: 0 });
  expect([...localSegments(t.walDir).keys()]).toEqual(['wal-newest.log']);

  expect(await lostSegments(originals, t.walDir, bed.s3, t.bucket, t.prefix)).toEqual([]);
  return archive.helperMaxRssKiB as number;
}

describe('many small segments', () => {
  it(`${SMALL} and ${LARGE} segments are archived, verified and deleted by one upload process whose memory does not grow with the count`, async () => {
    const small = await pipeline(SMALL, 'node-few');
    const large = await pipeline(LARGE, 'node-many');
    expect(large - small).toBeLessThan(MAX_RSS_GROWTH_KIB);
  }, 600_000); // bed.moto spends ~2.5 ms of CPU per request: ~10,000 requests here (30,000 before: 10,000 files)
});
