/**
 * WAL archival throughput against moto_server (runbook §5C): this pipeline against the runbook's
 * way, on the same data, in one run.
 *
 *   npx tsx bench/archive-wal.ts [--sample N] [--concurrency N] [--only large|small]
 *
 * Shapes: 12 × 64 MiB segments, and 10,000 × 64 KiB segments (the inode-exhaustion case).
 * - Runbook way: one `aws s3 cp <file> s3://bucket/runbook/` per file, sequentially, unverified
 *   (runbook §5C "xargs -I {} aws s3 cp {} s3://stemedb-archive/wal/"). For the 10,000-file shape
 *   only a sample of N files (default 200) is timed and the time is extrapolated to all files; the
 *   output says so.
 * - This pipeline: the ArchiveWal Command document (create-only PUTs with SHA-256, one helper
 *   process), the verify-archive logic (HeadObject + SHA-256 compare of every key), and the
 *   DeleteArchivedWal Command document (local SHA-256 re-check, then delete). Times each phase;
 *   "upload+verify" is the figure to compare with the runbook way (which neither verifies nor
 *   deletes), "total" adds the verified deletion.
 *
 * Prints progress on stderr, a table, and one JSON object as the last line.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { uploadManifestKey } from '../lambda/shared/wal-manifest';
import { verifyArchive } from '../lambda/verify-archive';
import { runCommandDocument, synthesizeCommandDocument } from '../test/support/command-document-runner';
import { type MotoServer, startMotoServer, TEST_REGION } from '../test/support/moto-server';

const MiB = 1024 * 1024;
const DAY_MS = 86_400_000;

interface Shape {
  readonly name: 'large' | 'small';
  readonly files: number;
  readonly bytes: number;
}

const SHAPES: readonly Shape[] = [
  { name: 'large', files: 12, bytes: 64 * MiB },
  { name: 'small', files: 10_000, bytes: 64 * 1024 },
];

interface Options {
  readonly sample: number;
  readonly concurrency: number;
  readonly only?: string;
}

function parseArgs(argv: readonly string[]): Options {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    sample: Number(get('--sample') ?? 200),
    concurrency: Number(get('--concurrency') ?? 8),
    only: get('--only'),
  };
}

const progress = (msg: string): void => {
  process.stderr.write(`archive-wal bench: ${msg}\n`);
};

/** Writes the shape's segments (distinct random bytes) 40 days old, and one newest segment. */
function writeSegments(dir: string, shape: Shape): string[] {
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  const buf = Buffer.alloc(shape.bytes);
  const old = new Date(Date.now() - 40 * DAY_MS);
  for (let i = 0; i < shape.files; i++) {
    randomFillSync(buf);
    const name = `wal-${String(i).padStart(8, '0')}.log`;
    writeFileSync(join(dir, name), buf);
    utimesSync(join(dir, name), old, old);
    names.push(name);
  }
  writeFileSync(join(dir, 'wal-newest.log'), 'being written');
  return names;
}

/** Seconds to `aws s3 cp` each file of `names`, one process after another (the runbook's way). */
function runbookCopy(moto: MotoServer, bucket: string, dir: string, names: readonly string[]): number {
  const started = performance.now();
  for (const name of names) {
    const r = spawnSync(
      'aws',
      [
        '--endpoint-url',
        moto.endpoint,
        's3',
        'cp',
        join(dir, name),
        `s3://${bucket}/runbook/`,
        '--only-show-errors',
      ],
      { env: moto.env, encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`aws s3 cp ${name} failed: ${r.stderr}`);
  }
  return (performance.now() - started) / 1000;
}

interface PhaseTimes {
  readonly upload: number;
  readonly verify: number;
  readonly delete: number;
}

async function pipeline(
  moto: MotoServer,
  s3: S3Client,
  bucket: string,
  walDir: string,
  shape: Shape,
  concurrency: number,
): Promise<PhaseTimes> {
  const prefix = 'wal/bench-node/';
  const env = moto.env;
  const t0 = performance.now();
  const up = await runCommandDocument(
    synthesizeCommandDocument('ArchiveWal'),
    {
      WalDir: walDir,
      Bucket: bucket,
      Prefix: prefix,
      OlderThanDays: '30',
      Concurrency: String(concurrency),
      DryRun: 'false',
      EndpointUrl: moto.endpoint,
    },
    { env, timeoutMs: 3_600_000 },
  );
  if (up.exitCode !== 0 || up.lastJson?.uploaded !== shape.files) {
    throw new Error(`upload failed: ${up.stderr}\n${up.stdout}`);
  }
  const t1 = performance.now();
  const verified = await verifyArchive(s3, {
    bucket,
    manifestKey: uploadManifestKey(prefix),
    expectedPrefix: prefix,
    node: 'bench-node',
  });
  if (verified.status !== 'verified' || verified.counts.verified !== shape.files) {
    throw new Error(`verification failed: ${JSON.stringify(verified).slice(0, 2000)}`);
  }
  const t2 = performance.now();
  const del = await runCommandDocument(
    synthesizeCommandDocument('DeleteArchivedWal'),
    { WalDir: walDir, Bucket: bucket, Prefix: prefix, DryRun: 'false', EndpointUrl: moto.endpoint },
    { env, timeoutMs: 3_600_000 },
  );
  if (del.exitCode !== 0 || del.lastJson?.deleted !== shape.files) {
    throw new Error(`delete failed: ${del.stderr}\n${del.stdout}`);
  }
  const t3 = performance.now();
  return { upload: (t1 - t0) / 1000, verify: (t2 - t1) / 1000, delete: (t3 - t2) / 1000 };
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

async function benchShape(shape: Shape, opts: Options) {
  const moto = await startMotoServer();
  const work = mkdtempSync(join(tmpdir(), `bench-archive-wal-${shape.name}-`));
  try {
    const s3 = new S3Client({
      endpoint: moto.endpoint,
      region: TEST_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    const bucket = `bench-${shape.name}`;
    await s3.send(
      new CreateBucketCommand({
        Bucket: bucket,
        CreateBucketConfiguration: { LocationConstraint: TEST_REGION },
      }),
    );
    const walDir = join(work, 'wal');
    progress(`${shape.name}: writing ${shape.files} × ${shape.bytes / 1024} KiB`);
    const names = writeSegments(walDir, shape);
    const totalMiB = (shape.files * shape.bytes) / MiB;

    const sampled = shape.files > opts.sample;
    const sample = sampled ? names.slice(0, opts.sample) : names;
    progress(`${shape.name}: runbook way, aws s3 cp × ${sample.length}${sampled ? ' (sample)' : ''}`);
    const sampleSeconds = runbookCopy(moto, bucket, walDir, sample);
    const runbookSeconds = (sampleSeconds * names.length) / sample.length;

    progress(`${shape.name}: pipeline, concurrency ${opts.concurrency}`);
    const t = await pipeline(moto, s3, bucket, walDir, shape, opts.concurrency);
    const left = readdirSync(walDir);
    if (left.length !== 1)
      throw new Error(`expected only the newest segment left, found ${left.length} files`);

    const uploadVerify = t.upload + t.verify;
    const total = uploadVerify + t.delete;
    const rate = (seconds: number) => ({
      seconds: round(seconds, 2),
      mibPerSecond: round(totalMiB / seconds),
      filesPerSecond: round(shape.files / seconds),
    });
    return {
      shape: shape.name,
      files: shape.files,
      fileBytes: shape.bytes,
      totalMiB: round(totalMiB),
      runbook: {
        ...rate(runbookSeconds),
        measuredFiles: sample.length,
        measuredSeconds: round(sampleSeconds, 2),
        extrapolated: sampled,
      },
      pipeline: {
        concurrency: opts.concurrency,
        uploadSeconds: round(t.upload, 2),
        verifySeconds: round(t.verify, 2),
        deleteSeconds: round(t.delete, 2),
        upload: rate(t.upload),
        uploadVerify: rate(uploadVerify),
        total: rate(total),
      },
      ratios: {
        uploadVerifyVsRunbook: round(runbookSeconds / uploadVerify, 2),
        totalVsRunbook: round(runbookSeconds / total, 2),
      },
    };
  } finally {
    await moto.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const results = [];
  for (const shape of SHAPES) {
    if (opts.only !== undefined && shape.name !== opts.only) continue;
    results.push(await benchShape(shape, opts));
  }
  const goals = {
    large: 'upload+verify at least as fast as the runbook way (ratio >= 1)',
    small: 'upload+verify at least 10x faster than the runbook way (ratio >= 10)',
  };
  console.log(
    '\nshape  files   MiB   runbook s (MiB/s, files/s)        pipeline upload+verify s (MiB/s, files/s)  ratio  total s  ratio',
  );
  for (const r of results) {
    const rb = r.runbook;
    const uv = r.pipeline.uploadVerify;
    console.log(
      [
        r.shape.padEnd(6),
        String(r.files).padStart(5),
        String(r.totalMiB).padStart(6),
        `  ${rb.seconds}${rb.extrapolated ? '*' : ''} (${rb.mibPerSecond}, ${rb.filesPerSecond})`.padEnd(34),
        `${uv.seconds} (${uv.mibPerSecond}, ${uv.filesPerSecond})`.padEnd(43),
        `${r.ratios.uploadVerifyVsRunbook}x`.padStart(6),
        String(r.pipeline.total.seconds).padStart(8),
        `${r.ratios.totalVsRunbook}x`.padStart(6),
      ].join(' '),
    );
  }
  if (results.some((r) => r.runbook.extrapolated)) {
    const r = results.find((x) => x.runbook.extrapolated);
    console.log(
      `* extrapolated: ${r?.runbook.measuredFiles} files timed (${r?.runbook.measuredSeconds} s), scaled to ${r?.files}`,
    );
  }
  console.log(JSON.stringify({ bench: 'archive-wal', cpus: cpus().length, goals, results }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
