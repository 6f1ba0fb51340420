/**
 * verify-archive: the independent check between uploading WAL segments to S3 and deleting them
 * (runbook §5C). Called by the `<Prefix>-ArchiveWal` Automation (aws:invokeLambdaFunction) after
 * the host's upload phase; it never trusts the host: it reads only S3.
 *
 * Input: { bucket, manifestKey, expectedPrefix, node?, dryRun?: boolean|'true'|'false' }
 *   manifestKey    the upload manifest, normally `<expectedPrefix>_manifest/upload.json`
 *   expectedPrefix `wal/<node>/`: the manifest and every key in it must be under it
 *   node           when given ('' = not given), the manifest's node must equal it
 * Steps: GetObject the manifest; refuse (as data, nothing written) when it is missing, malformed,
 * for another bucket, prefix or node, or names a key outside the prefix. Then HeadObject with
 * ChecksumMode ENABLED for every entry the host reports archived (bounded concurrency, throttling
 * retried with backoff), comparing ContentLength and ChecksumSHA256 with the manifest. Writes the
 * verified manifest (matches only, the upload's runId) to `<expectedPrefix>_manifest/verified.json`
 * unless dryRun; the delete phase deletes only what it names.
 * Output: { status: 'verified' | 'refused', reason, bucket, manifestKey, verifiedManifestKey,
 *   written, dryRun, runId, node, counts: { entries, checked, verified, mismatched, notArchived },
 *   mismatches: [{ key, reason, expectedSize, expectedSha256, actualSize?, actualSha256?, error? }],
 *   notArchived: [{ key, status, reason? }] } — every key always present ('' / 0 / [] when not
 *   applicable) so Automation selectors such as `$.Payload.status` resolve.
 * Mismatch reasons: missing (404), size-mismatch, checksum-mismatch, no-checksum (the object has
 * no SHA-256), error (any other HeadObject failure, throttling after retries included).
 * A failure to read the manifest other than NoSuchKey, or to write the verified manifest, is a
 * fault and is thrown.
 *
 * Environment:
 *   VERIFY_CONCURRENCY  HeadObject calls in flight, 1..64 (default 16)
 *   POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE (see shared/powertools.ts)
 * IAM: s3:GetObject on the archive bucket's `wal/<node>/...` keys (GetObject and HeadObject),
 *   s3:ListBucket on the bucket (without it S3 answers 403 instead of 404 for a missing key),
 *   s3:PutObject on `wal/<node>/_manifest/verified.json`, and kms:Decrypt + kms:GenerateDataKey
 *   on the bucket's key.
 */

import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { instrumentedInvocation, logger, metrics } from './shared/powertools';
import { errorCode, type RetryOptions, unlessAwsError, withThrottlingRetry } from './shared/retry';
import {
  ARCHIVED_STATUSES,
  base64ToHex,
  isBucketName,
  MANIFEST_VERSION,
  NODE_PATTERN,
  PREFIX_PATTERN,
  parseUploadManifest,
  type UploadEntry,
  type UploadStatus,
  VERIFIED_MANIFEST_KIND,
  type VerifiedEntry,
  type VerifiedManifest,
  verifiedManifestKey,
} from './shared/wal-manifest';

export interface VerifyArchiveInput {
  readonly bucket: string;
  readonly manifestKey: string;
  readonly expectedPrefix: string;
  readonly node: string;
  readonly dryRun: boolean;
}

export type MismatchReason = 'missing' | 'size-mismatch' | 'checksum-mismatch' | 'no-checksum' | 'error';

export interface Mismatch {
  readonly key: string;
  readonly reason: MismatchReason;
  readonly expectedSize: number;
  readonly expectedSha256: string;
  readonly actualSize?: number;
  readonly actualSha256?: string;
  /** The error code, for reason `error`. */
  readonly error?: string;
}

export interface VerifyArchiveResult {
  readonly status: 'verified' | 'refused';
  /** Why it refused; '' when verified. */
  readonly reason: string;
  readonly bucket: string;
  readonly manifestKey: string;
  /** Where the verified manifest is (or would be, in a dry run); '' when refused. */
  readonly verifiedManifestKey: string;
  /** True when the verified manifest was written. */
  readonly written: boolean;
  readonly dryRun: boolean;
  readonly runId: string;
  readonly node: string;
  readonly counts: {
    readonly entries: number;
    readonly checked: number;
    readonly verified: number;
    readonly mismatched: number;
    readonly notArchived: number;
  };
  readonly mismatches: readonly Mismatch[];
  readonly notArchived: ReadonlyArray<{
    readonly key: string;
    readonly status: UploadStatus;
    readonly reason?: string;
  }>;
}

export interface VerifyOptions {
  /** HeadObject calls in flight. @default 16 */
  readonly concurrency?: number;
  /** Throttling retry for every S3 call. @default withThrottlingRetry's defaults */
  readonly retry?: RetryOptions;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

export const DEFAULT_CONCURRENCY = 16;

const EMPTY_COUNTS = { entries: 0, checked: 0, verified: 0, mismatched: 0, notArchived: 0 };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks the event; returns the input or the reason it is unusable. */
export function parseVerifyInput(event: unknown): VerifyArchiveInput | string {
  if (!isRecord(event)) return 'the input must be an object';
  const { bucket, manifestKey, expectedPrefix } = event;
  const node = event.node ?? '';
  const dryRun = event.dryRun ?? false;
  if (!isBucketName(bucket)) {
    return `bucket ${JSON.stringify(bucket)} is not a bucket name`;
  }
  if (typeof expectedPrefix !== 'string' || !PREFIX_PATTERN.test(expectedPrefix)) {
    return `expectedPrefix ${JSON.stringify(expectedPrefix)} must look like wal/<node>/`;
  }
  if (
    typeof manifestKey !== 'string' ||
    !manifestKey.startsWith(expectedPrefix) ||
    manifestKey.includes('..')
  ) {
    return `manifestKey ${JSON.stringify(manifestKey)} is not under expectedPrefix ${expectedPrefix}`;
  }
  if (typeof node !== 'string' || (node !== '' && !NODE_PATTERN.test(node))) {
    return `node ${JSON.stringify(node)} is not a node name`;
  }
  if (![true, false, 'true', 'false'].includes(dryRun as boolean | string)) {
    return `dryRun must be true or false, got ${JSON.stringify(dryRun)}`;
  }
  return { bucket, manifestKey, expectedPrefix, node, dryRun: dryRun === true || dryRun === 'true' };
}

/** Runs `work` over `items` with at most `limit` in flight; results in input order. */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/** Compares one archived entry with what S3 holds; undefined when it matches. */
export async function checkEntry(
  s3: S3Client,
  bucket: string,
  entry: UploadEntry & { size: number; sha256: string },
  retry: RetryOptions = {},
): Promise<Mismatch | undefined> {
  const expected = { key: entry.key, expectedSize: entry.size, expectedSha256: entry.sha256 };
  let head: { ContentLength?: number; ChecksumSHA256?: string };
  try {
    head = await withThrottlingRetry(
      () => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: entry.key, ChecksumMode: 'ENABLED' })),
      retry,
    );
  } catch (err) {
    const code = errorCode(err) ?? 'Unknown';
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (code === 'NotFound' || code === 'NoSuchKey' || status === 404)
      return { ...expected, reason: 'missing' };
    return { ...expected, reason: 'error', error: code };
  }
  const actualSize = head.ContentLength;
  if (head.ChecksumSHA256 === undefined) return { ...expected, reason: 'no-checksum', actualSize };
  const actualSha256 = base64ToHex(head.ChecksumSHA256) ?? head.ChecksumSHA256;
  if (actualSize !== entry.size) return { ...expected, reason: 'size-mismatch', actualSize, actualSha256 };
  if (actualSha256 !== entry.sha256)
    return { ...expected, reason: 'checksum-mismatch', actualSize, actualSha256 };
  return undefined;
}

function refused(reason: string, bucket: string, manifestKey: string, dryRun: boolean): VerifyArchiveResult {
  return {
    status: 'refused',
    reason,
    bucket,
    manifestKey,
    verifiedManifestKey: '',
    written: false,
    dryRun,
    runId: '',
    node: '',
    counts: EMPTY_COUNTS,
    mismatches: [],
    notArchived: [],
  };
}

/** Reads the manifest text; undefined when it does not exist. */
function readManifest(
  s3: S3Client,
  bucket: string,
  key: string,
  retry: RetryOptions,
): Promise<string | undefined> {
  return unlessAwsError('NoSuchKey', undefined, async () => {
    const res = await withThrottlingRetry(
      () => s3.send(new GetObjectCommand({ Bucket: bucket, Key: key })),
      retry,
    );
    return (await res.Body?.transformToString('utf-8')) ?? '';
  });
}

/** The whole verify phase; `event` is checked here, so the handler passes it through. */
export async function verifyArchive(
  s3: S3Client,
  event: unknown,
  options: VerifyOptions = {},
): Promise<VerifyArchiveResult> {
  const retry = options.retry ?? {};
  const now = options.now ?? (() => new Date());
  const input = parseVerifyInput(event);
  if (typeof input === 'string') {
    const e = isRecord(event) ? event : {};
    return refused(`invalid input: ${input}`, String(e.bucket ?? ''), String(e.manifestKey ?? ''), false);
  }
  const { bucket, manifestKey, expectedPrefix, node, dryRun } = input;
  const refuse = (reason: string): VerifyArchiveResult => refused(reason, bucket, manifestKey, dryRun);
  const text = await readManifest(s3, bucket, manifestKey, retry);
  if (text === undefined) return refuse(`manifest s3://${bucket}/${manifestKey} not found`);
  const parsed = parseUploadManifest(text);
  if (!parsed.ok) return refuse(`the manifest is malformed: ${parsed.problems.join('; ')}`);
  const manifest = parsed.manifest;
  if (manifest.bucket !== bucket) {
    return refuse(`the manifest is for bucket ${manifest.bucket}, not ${bucket}`);
  }
  if (manifest.prefix !== expectedPrefix) {
    return refuse(`the manifest is for prefix ${manifest.prefix}, not ${expectedPrefix}`);
  }
  if (node !== '' && manifest.node !== node) {
    return refuse(`the manifest is for node ${manifest.node}, not ${node}`);
  }

  const archived: Array<UploadEntry & { size: number; sha256: string }> = [];
  const notArchived: Array<{ key: string; status: UploadStatus; reason?: string }> = [];
  for (const e of manifest.entries) {
    if (ARCHIVED_STATUSES.has(e.status) && e.size !== undefined && e.sha256 !== undefined) {
      archived.push({ ...e, size: e.size, sha256: e.sha256 });
    } else {
      notArchived.push(
        e.reason === undefined
          ? { key: e.key, status: e.status }
          : { key: e.key, status: e.status, reason: e.reason },
      );
    }
  }
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const outcomes = await mapBounded(archived, concurrency, (e) => checkEntry(s3, bucket, e, retry));
  const verified: VerifiedEntry[] = [];
  const mismatches: Mismatch[] = [];
  outcomes.forEach((m, i) => {
    const e = archived[i];
    if (e === undefined) return;
    if (m === undefined) verified.push({ key: e.key, size: e.size, sha256: e.sha256, status: 'verified' });
    else mismatches.push(m);
  });

  const outKey = verifiedManifestKey(expectedPrefix);
  if (!dryRun) {
    const out: VerifiedManifest = {
      kind: VERIFIED_MANIFEST_KIND,
      version: MANIFEST_VERSION,
      runId: manifest.runId,
      node: manifest.node,
      bucket,
      prefix: expectedPrefix,
      sourceManifestKey: manifestKey,
      sourceCreatedAt: manifest.createdAt,
      verifiedAt: now().toISOString(),
      entries: verified,
    };
    await withThrottlingRetry(
      () =>
        s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: outKey,
            Body: JSON.stringify(out),
            ContentType: 'application/json',
            ChecksumAlgorithm: 'SHA256',
          }),
        ),
      retry,
    );
  }
  for (const m of mismatches) logger.warn('archive mismatch', { ...m });
  return {
    status: 'verified',
    reason: '',
    bucket,
    manifestKey,
    verifiedManifestKey: outKey,
    written: !dryRun,
    dryRun,
    runId: manifest.runId,
    node: manifest.node,
    counts: {
      entries: manifest.entries.length,
      checked: archived.length,
      verified: verified.length,
      mismatched: mismatches.length,
      notArchived: notArchived.length,
    },
    mismatches,
    notArchived,
  };
}

/** VERIFY_CONCURRENCY as a number, or an error naming the variable. */
export function concurrencyFromEnv(env: NodeJS.ProcessEnv): number {
  const raw = env.VERIFY_CONCURRENCY;
  if (raw === undefined || raw === '') return DEFAULT_CONCURRENCY;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new Error(`VERIFY_CONCURRENCY must be 1..64, got ${JSON.stringify(raw)}`);
  return n;
}

/** Adds the outcome's metrics (dimension `node`); the handler flushes them. */
export function recordOutcome(result: VerifyArchiveResult): void {
  metrics.addDimension('node', result.node === '' ? 'unknown' : result.node);
  if (result.status === 'refused') {
    metrics.addMetric('ArchiveVerifyRefused', MetricUnit.Count, 1);
    return;
  }
  metrics.addMetric('ArchiveVerifiedObjects', MetricUnit.Count, result.counts.verified);
  metrics.addMetric('ArchiveMismatches', MetricUnit.Count, result.counts.mismatched);
}

const CONCURRENCY = concurrencyFromEnv(process.env);
const s3 = new S3Client({ maxAttempts: 1 });

export const handler = (event: unknown): Promise<VerifyArchiveResult> =>
  instrumentedInvocation('verify-archive', 'ArchiveVerifyError', async () => {
    const result = await verifyArchive(s3, event, { concurrency: CONCURRENCY });
    recordOutcome(result);
    if (result.status === 'refused') logger.warn('verify-archive refused', { reason: result.reason });
    else logger.info('verify-archive done', { counts: result.counts, runId: result.runId });
    return result;
  });
