import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ArchiveTestBed,
  archiveTestBed,
  expectExit0,
  localSegments,
  lostSegments,
  runArchive,
  runDelete,
  runVerify,
  setAgeDays,
  sha256Hex,
  walTarget,
} from './support/wal-archive';

/**
 * 10,000 small WAL segments (the inode-exhaustion shape) through the whole pipeline: one upload
 * helper process, not 10,000 CLI processes, with memory bounded by the concurrency, not the count.
 * Files are tiny so the test measures the per-file path, and stays short.
 */

const COUNT = 10_000;
/** The upload helper's peak RSS must stay far below what holding 10,000 files would need. */
const MAX_HELPER_RSS_KIB = 160 * 1024;

let bed: ArchiveTestBed;

beforeAll(async () => {
  bed = await archiveTestBed('archive-wal-scale-');
});

afterAll(() => bed?.cleanup());

describe('10,000 small segments', () => {
  it('are archived, verified and deleted with one upload process and bounded memory', async () => {
    const t = walTarget(bed.moto, bed.root, await bed.newBucket(), 'node-many');
    const originals = new Map<string, string>();
    for (let i = 0; i < COUNT; i++) {
      const name = `wal-${String(i).padStart(8, '0')}.log`;
      const body = `segment ${i}\n`;
      const path = join(t.walDir, name);
      writeFileSync(path, body);
      setAgeDays(path, 30);
      originals.set(name, sha256Hex(body));
    }
    writeFileSync(join(t.walDir, 'wal-newest.log'), 'newest');

    const archive = expectExit0(await runArchive(t, { Concurrency: '16' }, { timeoutMs: 300_000 }));
    expect(archive).toMatchObject({ mode: 'batch', selected: COUNT, uploaded: COUNT, failed: 0 });
    expect(archive.helperMaxRssKiB).toBeLessThan(MAX_HELPER_RSS_KIB);

    const verify = await runVerify(bed.s3, t);
    expect(verify.counts).toMatchObject({ verified: COUNT, mismatched: 0 });

    const del = expectExit0(await runDelete(t, {}, { timeoutMs: 300_000 }));
    expect(del).toMatchObject({ deleted: COUNT, kept: 0 });
    expect([...localSegments(t.walDir).keys()]).toEqual(['wal-newest.log']);

    expect(await lostSegments(originals, t.walDir, bed.s3, t.bucket, t.prefix)).toEqual([]);
  }, 600_000); // ~100 s alone on 2 cores: bed.moto spends ~2.5 ms of CPU per request, 30,000 requests
});
