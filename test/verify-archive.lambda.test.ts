import { createHash } from 'node:crypto';
import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { logger, metrics } from '../lambda/shared/powertools';
import {
  base64ToHex,
  hexToBase64,
  parseUploadManifest,
  parseVerifiedManifest,
  segmentName,
  type UploadEntry,
  type UploadManifest,
  uploadManifestKey,
  verifiedManifestKey,
} from '../lambda/shared/wal-manifest';
import {
  concurrencyFromEnv,
  parseVerifyInput,
  recordOutcome,
  type VerifyArchiveResult,
  verifyArchive,
} from '../lambda/verify-archive';
import { type MotoServer, startMotoServer } from './support/moto-server';
import { newBucket, putObject, s3Client } from './support/wal-archive';

/**
 * verify-archive: every error path with the S3 client mocked (NoSuchKey, throttling, mismatches,
 * refusals), then the real thing against moto_server.
 */

const BUCKET = 'stemedb-wal-archive';
const PREFIX = 'wal/db-1/';
const MANIFEST_KEY = uploadManifestKey(PREFIX);
const NOW = new Date('2026-05-01T12:00:00Z');

const client = new S3Client({ region: 'eu-west-1', maxAttempts: 1 });
/** Mocks this one client only, so the moto tests below use a real one. */
const s3Mock = mockClient(client);
const noSleep = { sleep: async () => {}, maxAttempts: 3 };

function sha(content: string): string {
  return createHash('sha256').update(content).digest('hex');
}

function entry(name: string, content: string, status: UploadEntry['status'] = 'uploaded'): UploadEntry {
  return { key: `${PREFIX}${name}`, size: Buffer.byteLength(content), sha256: sha(content), status };
}

function manifest(entries: UploadEntry[], over: Partial<UploadManifest> = {}): UploadManifest {
  return {
    kind: 'stemedb-wal-archive-manifest',
    version: 1,
    runId: 'run-1',
    node: 'db-1',
    bucket: BUCKET,
    prefix: PREFIX,
    createdAt: '2026-05-01T11:59:00Z',
    entries,
    ...over,
  };
}

function body(text: string): GetObjectCommandOutput['Body'] {
  return { transformToString: async () => text } as unknown as GetObjectCommandOutput['Body'];
}

function s3Error(name: string, httpStatusCode = 400): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: 'client',
    $metadata: { httpStatusCode },
    message: `${name} (mocked)`,
  });
}

/** Serves `m` as the manifest and answers HeadObject from `objects` (key → content). */
function serve(m: UploadManifest | string, objects: Record<string, string>): void {
  s3Mock
    .on(GetObjectCommand, { Key: MANIFEST_KEY })
    .resolves({ Body: body(typeof m === 'string' ? m : JSON.stringify(m)) });
  for (const [key, content] of Object.entries(objects)) {
    s3Mock.on(HeadObjectCommand, { Key: key }).resolves({
      ContentLength: Buffer.byteLength(content),
      ChecksumSHA256: hexToBase64(sha(content)),
    });
  }
  s3Mock.on(PutObjectCommand).resolves({});
}

const input = (over: Record<string, unknown> = {}) => ({
  bucket: BUCKET,
  manifestKey: MANIFEST_KEY,
  expectedPrefix: PREFIX,
  node: 'db-1',
  ...over,
});

async function verify(over: Record<string, unknown> = {}, concurrency = 4): Promise<VerifyArchiveResult> {
  return await verifyArchive(client, input(over), { retry: noSleep, now: () => NOW, concurrency });
}

/** The verified manifest the Lambda wrote (the body of its only PutObject). */
function writtenManifest(): ReturnType<typeof parseVerifiedManifest> {
  const puts = s3Mock.commandCalls(PutObjectCommand);
  expect(puts).toHaveLength(1);
  const put = puts[0]?.args[0].input;
  expect(put).toMatchObject({
    Bucket: BUCKET,
    Key: verifiedManifestKey(PREFIX),
    ChecksumAlgorithm: 'SHA256',
  });
  return parseVerifiedManifest(String(put?.Body));
}

beforeAll(() => {
  logger.setLogLevel('SILENT');
});

beforeEach(() => {
  s3Mock.reset();
});

describe('verify-archive with a mocked S3', () => {
  it('writes a verified manifest of the matching entries with the upload run id', async () => {
    serve(manifest([entry('a.log', 'alpha'), entry('b.log', 'beta', 'already-archived')]), {
      [`${PREFIX}a.log`]: 'alpha',
      [`${PREFIX}b.log`]: 'beta',
    });
    const r = await verify();
    expect(r).toMatchObject({
      status: 'verified',
      written: true,
      runId: 'run-1',
      counts: { entries: 2, checked: 2, verified: 2, mismatched: 0, notArchived: 0 },
      mismatches: [],
    });
    const written = writtenManifest();
    if (!written.ok) throw new Error(written.problems.join('; '));
    expect(written.manifest).toMatchObject({
      kind: 'stemedb-wal-verified-manifest',
      runId: 'run-1',
      bucket: BUCKET,
      prefix: PREFIX,
      node: 'db-1',
      sourceManifestKey: MANIFEST_KEY,
      verifiedAt: NOW.toISOString(),
    });
    expect(written.manifest.entries).toEqual([
      { key: `${PREFIX}a.log`, size: 5, sha256: sha('alpha'), status: 'verified' },
      { key: `${PREFIX}b.log`, size: 4, sha256: sha('beta'), status: 'verified' },
    ]);
  });

  it('reports a checksum mismatch and leaves that entry out of the verified manifest', async () => {
    serve(manifest([entry('a.log', 'alpha'), entry('b.log', 'beta')]), {
      [`${PREFIX}a.log`]: 'alpha',
      [`${PREFIX}b.log`]: 'BETA',
    });
    const r = await verify();
    expect(r.counts).toMatchObject({ verified: 1, mismatched: 1 });
    expect(r.mismatches).toEqual([
      {
        key: `${PREFIX}b.log`,
        reason: 'checksum-mismatch',
        expectedSize: 4,
        expectedSha256: sha('beta'),
        actualSize: 4,
        actualSha256: sha('BETA'),
      },
    ]);
    const written = writtenManifest();
    expect(written.ok && written.manifest.entries.map((e) => e.key)).toEqual([`${PREFIX}a.log`]);
  });

  it('reports a size mismatch', async () => {
    serve(manifest([entry('a.log', 'alpha')]), {});
    s3Mock
      .on(HeadObjectCommand, { Key: `${PREFIX}a.log` })
      .resolves({ ContentLength: 4, ChecksumSHA256: hexToBase64(sha('alpha')) });
    const r = await verify();
    expect(r.mismatches).toMatchObject([{ key: `${PREFIX}a.log`, reason: 'size-mismatch', actualSize: 4 }]);
  });

  it('reports an object stored without a SHA-256 checksum as a mismatch', async () => {
    serve(manifest([entry('a.log', 'alpha')]), {});
    s3Mock.on(HeadObjectCommand, { Key: `${PREFIX}a.log` }).resolves({ ContentLength: 5 });
    expect((await verify()).mismatches).toMatchObject([{ reason: 'no-checksum' }]);
  });

  it('reports a key that is missing from S3 (NotFound)', async () => {
    serve(manifest([entry('a.log', 'alpha')]), {});
    s3Mock.on(HeadObjectCommand, { Key: `${PREFIX}a.log` }).rejects(s3Error('NotFound', 404));
    const r = await verify();
    expect(r.mismatches).toMatchObject([{ key: `${PREFIX}a.log`, reason: 'missing' }]);
    const written = writtenManifest();
    expect(written.ok && written.manifest.entries).toEqual([]);
  });

  it('retries a throttled HeadObject and verifies the key', async () => {
    serve(manifest([entry('a.log', 'alpha')]), {});
    s3Mock
      .on(HeadObjectCommand, { Key: `${PREFIX}a.log` })
      .rejectsOnce(s3Error('SlowDown', 503))
      .resolves({ ContentLength: 5, ChecksumSHA256: hexToBase64(sha('alpha')) });
    const r = await verify();
    expect(r.counts).toMatchObject({ verified: 1, mismatched: 0 });
    expect(s3Mock.commandCalls(HeadObjectCommand)).toHaveLength(2);
  });

  it('reports a key that stays throttled as an error after bounded retries, and keeps it out', async () => {
    serve(manifest([entry('a.log', 'alpha')]), {});
    s3Mock.on(HeadObjectCommand).rejects(s3Error('SlowDown', 503));
    const r = await verify();
    expect(r.mismatches).toMatchObject([{ key: `${PREFIX}a.log`, reason: 'error', error: 'SlowDown' }]);
    expect(s3Mock.commandCalls(HeadObjectCommand)).toHaveLength(noSleep.maxAttempts);
  });

  it('reports an access-denied HeadObject as an error mismatch', async () => {
    serve(manifest([entry('a.log', 'alpha')]), {});
    s3Mock.on(HeadObjectCommand).rejects(s3Error('Forbidden', 403));
    expect((await verify()).mismatches).toMatchObject([{ reason: 'error', error: 'Forbidden' }]);
  });

  it('retries a throttled manifest read', async () => {
    s3Mock
      .on(GetObjectCommand)
      .rejectsOnce(s3Error('SlowDown', 503))
      .resolves({ Body: body(JSON.stringify(manifest([]))) });
    s3Mock.on(PutObjectCommand).resolves({});
    expect(await verify()).toMatchObject({ status: 'verified', counts: { entries: 0 } });
  });

  it('refuses, writing nothing, when the manifest does not exist (NoSuchKey)', async () => {
    s3Mock.on(GetObjectCommand).rejects(s3Error('NoSuchKey', 404));
    const r = await verify();
    expect(r).toMatchObject({ status: 'refused', written: false, verifiedManifestKey: '' });
    expect(r.reason).toMatch(/not found/);
    expect(s3Mock.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('throws when the manifest cannot be read for another reason', async () => {
    s3Mock.on(GetObjectCommand).rejects(s3Error('AccessDenied', 403));
    await expect(verify()).rejects.toThrow(/AccessDenied/);
  });

  it('refuses a manifest naming a key outside the expected prefix', async () => {
    const outside = { key: 'wal/db-2/a.log', size: 1, sha256: sha('x'), status: 'uploaded' as const };
    serve(manifest([entry('a.log', 'alpha'), outside]), { [`${PREFIX}a.log`]: 'alpha' });
    const r = await verify();
    expect(r.status).toBe('refused');
    expect(r.reason).toMatch(/wal\/db-2\/a\.log.*not a file name under wal\/db-1\//);
    expect(s3Mock.commandCalls(HeadObjectCommand)).toHaveLength(0);
    expect(s3Mock.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it.each([
    ['a nested key', `${PREFIX}sub/a.log`],
    ['a dot-dot key', `${PREFIX}..`],
    ['a key with a newline', `${PREFIX}a\nb.log`],
  ])('refuses a manifest with %s', async (_what, key) => {
    serve(manifest([{ key, size: 1, sha256: sha('x'), status: 'uploaded' }]), {});
    expect((await verify()).status).toBe('refused');
  });

  it.each([
    ['bucket', { bucket: 'other-bucket' }, /bucket other-bucket/],
    ['prefix', { prefix: 'wal/db-2/' }, /prefix wal\/db-2\//],
    ['node', { node: 'db-2' }, /node db-2/],
  ])('refuses a manifest for another %s', async (_what, over, reason) => {
    serve(manifest([], over), {});
    const r = await verify();
    expect(r).toMatchObject({ status: 'refused', written: false });
    expect(r.reason).toMatch(reason);
    expect(s3Mock.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('refuses a malformed manifest', async () => {
    serve('{"kind": "something else"}', {});
    expect((await verify()).reason).toMatch(/malformed/);
    serve('not json', {});
    expect((await verify()).reason).toMatch(/not a JSON object/);
  });

  it('checks only archived entries and lists the conflicts and failures it did not check', async () => {
    const conflict = { ...entry('c.log', 'gamma', 'conflict'), reason: 'different' };
    const failed: UploadEntry = { key: `${PREFIX}f.log`, status: 'failed', reason: 'S3 unreachable' };
    serve(manifest([entry('a.log', 'alpha'), conflict, failed]), { [`${PREFIX}a.log`]: 'alpha' });
    const r = await verify();
    expect(r.counts).toEqual({ entries: 3, checked: 1, verified: 1, mismatched: 0, notArchived: 2 });
    expect(r.notArchived).toEqual([
      { key: `${PREFIX}c.log`, status: 'conflict', reason: 'different' },
      { key: `${PREFIX}f.log`, status: 'failed', reason: 'S3 unreachable' },
    ]);
    expect(s3Mock.commandCalls(HeadObjectCommand)).toHaveLength(1);
  });

  it('writes nothing in a dry run', async () => {
    serve(manifest([entry('a.log', 'alpha')]), { [`${PREFIX}a.log`]: 'alpha' });
    const r = await verify({ dryRun: 'true' });
    expect(r).toMatchObject({ status: 'verified', dryRun: true, written: false, counts: { verified: 1 } });
    expect(s3Mock.commandCalls(PutObjectCommand)).toHaveLength(0);
  });

  it('keeps at most `concurrency` HeadObject calls in flight', async () => {
    const entries = Array.from({ length: 40 }, (_, i) => entry(`s${i}.log`, `content ${i}`));
    s3Mock.on(GetObjectCommand).resolves({ Body: body(JSON.stringify(manifest(entries))) });
    s3Mock.on(PutObjectCommand).resolves({});
    let inFlight = 0;
    let peak = 0;
    s3Mock.on(HeadObjectCommand).callsFake(async (req: { Key: string }) => {
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight -= 1;
      const i = Number(/s(\d+)\.log$/.exec(req.Key)?.[1]);
      return {
        ContentLength: Buffer.byteLength(`content ${i}`),
        ChecksumSHA256: hexToBase64(sha(`content ${i}`)),
      };
    });
    const r = await verify({}, 5);
    expect(r.counts.verified).toBe(40);
    expect(peak).toBe(5);
  });

  it.each([
    [{ bucket: 'Bad_Bucket' }, /bucket/],
    [{ bucket: 'a..b' }, /bucket/],
    [{ expectedPrefix: 'wal/db-1' }, /expectedPrefix/],
    [{ expectedPrefix: '../wal/' }, /expectedPrefix/],
    [{ manifestKey: 'wal/db-2/_manifest/upload.json' }, /manifestKey/],
    [{ node: 'db 1; rm' }, /node/],
    [{ dryRun: 'yes' }, /dryRun/],
  ])('refuses invalid input %j without calling S3', async (over, reason) => {
    const r = await verify(over);
    expect(r.status).toBe('refused');
    expect(r.reason).toMatch(reason);
    expect(s3Mock.calls()).toHaveLength(0);
  });

  it('accepts the Automation string forms of dryRun and an empty node', () => {
    expect(parseVerifyInput(input({ dryRun: 'false', node: '' }))).toMatchObject({ dryRun: false, node: '' });
  });

  it('adds the verified and mismatch counts as metrics with the node dimension', () => {
    const addMetric = vi.spyOn(metrics, 'addMetric');
    const addDimension = vi.spyOn(metrics, 'addDimension');
    recordOutcome({
      status: 'verified',
      node: 'db-1',
      counts: { entries: 3, checked: 3, verified: 2, mismatched: 1, notArchived: 0 },
    } as VerifyArchiveResult);
    expect(addDimension).toHaveBeenCalledWith('node', 'db-1');
    expect(addMetric).toHaveBeenCalledWith('ArchiveVerifiedObjects', 'Count', 2);
    expect(addMetric).toHaveBeenCalledWith('ArchiveMismatches', 'Count', 1);
    vi.restoreAllMocks();
  });

  it('reads VERIFY_CONCURRENCY and rejects a bad value, naming the variable', () => {
    expect(concurrencyFromEnv({})).toBe(16);
    expect(concurrencyFromEnv({ VERIFY_CONCURRENCY: '32' })).toBe(32);
    expect(() => concurrencyFromEnv({ VERIFY_CONCURRENCY: '0' })).toThrow(/VERIFY_CONCURRENCY/);
    expect(() => concurrencyFromEnv({ VERIFY_CONCURRENCY: 'many' })).toThrow(/VERIFY_CONCURRENCY/);
  });
});

describe('wal-manifest helpers', () => {
  it('converts between S3 base64 and hex SHA-256', () => {
    const hex = sha('hi\n');
    expect(hexToBase64(hex)).toBe('mOpuTyFvL7S2n/+bOkSELDhobKaF8/VdxIxdP7EQe+Q=');
    expect(base64ToHex(hexToBase64(hex))).toBe(hex);
    expect(base64ToHex('abc=')).toBeUndefined();
  });

  it('derives a segment name only for plain file names under the prefix', () => {
    expect(segmentName('wal/db-1/a b.log', 'wal/db-1/')).toBe('a b.log');
    for (const key of ['wal/db-2/a.log', 'wal/db-1/', 'wal/db-1/x/y', 'wal/db-1/..', 'wal/db-1/a\tb']) {
      expect(segmentName(key, 'wal/db-1/')).toBeUndefined();
    }
  });

  it('requires size and SHA-256 for archived entries but not for failed ones', () => {
    const failed = manifest([{ key: `${PREFIX}f.log`, status: 'failed', reason: 'x' }]);
    expect(parseUploadManifest(JSON.stringify(failed)).ok).toBe(true);
    const noSha = manifest([{ key: `${PREFIX}a.log`, size: 1, status: 'uploaded' }]);
    expect(parseUploadManifest(JSON.stringify(noSha))).toMatchObject({ ok: false });
    const twice = manifest([entry('a.log', 'a'), entry('a.log', 'a')]);
    expect(parseUploadManifest(JSON.stringify(twice))).toMatchObject({ ok: false });
  });
});

describe('verify-archive against moto_server', () => {
  let moto: MotoServer;
  let s3: S3Client;

  beforeAll(async () => {
    moto = await startMotoServer();
    s3 = s3Client(moto);
  });

  afterAll(async () => {
    await moto?.stop();
  });

  it('verifies real objects, reports one overwritten with other content, and writes the verified manifest', async () => {
    const bucket = await newBucket(s3);
    await putObject(s3, bucket, `${PREFIX}a.log`, 'alpha');
    await putObject(s3, bucket, `${PREFIX}b.log`, 'tampered');
    const m = manifest([entry('a.log', 'alpha'), entry('b.log', 'beta')], { bucket });
    await putObject(s3, bucket, MANIFEST_KEY, JSON.stringify(m));

    const r = await verifyArchive(s3, input({ bucket }), { retry: noSleep });
    expect(r.counts).toMatchObject({ verified: 1, mismatched: 1 });
    expect(r.mismatches).toMatchObject([{ key: `${PREFIX}b.log`, reason: 'size-mismatch' }]);
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: verifiedManifestKey(PREFIX) }));
    const written = parseVerifiedManifest((await res.Body?.transformToString()) ?? '');
    expect(written.ok && written.manifest.entries.map((e) => e.key)).toEqual([`${PREFIX}a.log`]);
  });
});
