/**
 * WAL archive manifests (runbook §5C): the contract between the three phases.
 *
 * - The upload phase (`ssm-documents/scripts/archive-wal.sh`, on the host) writes the upload
 *   manifest to `<prefix>_manifest/upload.json`: every file it tried, with size, SHA-256 and status.
 * - The verify phase (`lambda/verify-archive.ts`) reads it, checks every archived key in S3 with
 *   HeadObject, and writes the verified manifest to `<prefix>_manifest/verified.json`: only the
 *   entries whose stored size and SHA-256 match, and the upload manifest's `runId`.
 * - The delete phase (`ssm-documents/scripts/delete-archived-wal.sh`) deletes only files named in
 *   the verified manifest whose `runId` equals the current upload manifest's, and whose local size
 *   and SHA-256 still match.
 *
 * SHA-256 is always lowercase hex in manifests (what `sha256sum` prints); S3 reports it as base64
 * (`ChecksumSHA256`), converted with {@link base64ToHex}. Manifest keys contain a `/` after the
 * prefix, so no WAL segment (a file name, never containing `/`) can collide with them.
 */

import { UPLOAD_MANIFEST_NAME, VERIFIED_MANIFEST_NAME } from '../../contracts/wal-archive';

export const UPLOAD_MANIFEST_KIND = 'stemedb-wal-archive-manifest';
export const VERIFIED_MANIFEST_KIND = 'stemedb-wal-verified-manifest';
export const MANIFEST_VERSION = 1;

/** The same patterns as the Command documents' `Prefix` and `Bucket` parameters. */
export const PREFIX_PATTERN = /^([A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\/){1,8}$/;
export const BUCKET_PATTERN = /^[a-z0-9][a-z0-9-]{0,61}[a-z0-9](\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
export const NODE_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Largest size accepted in a manifest (S3's single-PUT limit is 5 GiB; this is generous). */
const MAX_SIZE = 2 ** 50;

/** What the upload phase did with one file. */
export type UploadStatus = 'uploaded' | 'already-archived' | 'conflict' | 'failed';
export const UPLOAD_STATUSES: readonly UploadStatus[] = [
  'uploaded',
  'already-archived',
  'conflict',
  'failed',
];
/** Statuses meaning "the object under the key holds this file": the verify phase checks these. */
export const ARCHIVED_STATUSES: ReadonlySet<UploadStatus> = new Set<UploadStatus>([
  'uploaded',
  'already-archived',
]);

export interface UploadEntry {
  /** `<prefix><file name>` */
  readonly key: string;
  /** Bytes; present for every status but `failed` (where it may be missing). */
  readonly size?: number;
  /** Lowercase hex; present for every status but `failed` (where it may be missing). */
  readonly sha256?: string;
  readonly status: UploadStatus;
  readonly reason?: string;
}

export interface UploadManifest {
  readonly kind: typeof UPLOAD_MANIFEST_KIND;
  readonly version: typeof MANIFEST_VERSION;
  /** Random id of the upload run; the verified manifest repeats it. */
  readonly runId: string;
  /** The node, the last part of the prefix. */
  readonly node: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly walDir?: string;
  readonly host?: string;
  /** ISO 8601 UTC */
  readonly createdAt: string;
  readonly entries: readonly UploadEntry[];
}

export interface VerifiedEntry {
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
  readonly status: 'verified';
}

export interface VerifiedManifest {
  readonly kind: typeof VERIFIED_MANIFEST_KIND;
  readonly version: typeof MANIFEST_VERSION;
  readonly runId: string;
  readonly node: string;
  readonly bucket: string;
  readonly prefix: string;
  /** The upload manifest this verifies. */
  readonly sourceManifestKey: string;
  readonly sourceCreatedAt: string;
  /** ISO 8601 UTC */
  readonly verifiedAt: string;
  readonly entries: readonly VerifiedEntry[];
}

export type ParseResult<T> =
  | { readonly ok: true; readonly manifest: T }
  | { readonly ok: false; readonly problems: readonly string[] };

export function uploadManifestKey(prefix: string): string {
  return `${prefix}${UPLOAD_MANIFEST_NAME}`;
}

export function verifiedManifestKey(prefix: string): string {
  return `${prefix}${VERIFIED_MANIFEST_NAME}`;
}

/**
 * The segment file name a key stands for under `prefix`, or undefined when the key is outside
 * the prefix or is not a plain file name (empty, `.`, `..`, containing `/` or a control character).
 */
export function segmentName(key: string, prefix: string): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const name = key.slice(prefix.length);
  if (name === '' || name === '.' || name === '..' || name.includes('/')) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(name)) return undefined;
  return name;
}

/** S3's base64 `ChecksumSHA256` as lowercase hex; undefined unless it is exactly 32 bytes. */
export function base64ToHex(b64: string): string | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(b64)) return undefined;
  return Buffer.from(b64, 'base64').toString('hex');
}

export function hexToBase64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

/** A bucket name as the documents accept it: {@link BUCKET_PATTERN}, 3 to 63 characters. */
export function isBucketName(v: unknown): v is string {
  return typeof v === 'string' && v.length >= 3 && v.length <= 63 && BUCKET_PATTERN.test(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_SIZE;
}

function headerProblems(raw: Record<string, unknown>, kind: string): string[] {
  const problems: string[] = [];
  if (raw.kind !== kind) problems.push(`kind must be ${kind}, got ${JSON.stringify(raw.kind)}`);
  if (raw.version !== MANIFEST_VERSION) problems.push(`version must be ${MANIFEST_VERSION}`);
  if (typeof raw.runId !== 'string' || raw.runId === '') problems.push('runId must be a non-empty string');
  if (typeof raw.node !== 'string') problems.push('node must be a string');
  if (typeof raw.bucket !== 'string' || !BUCKET_PATTERN.test(raw.bucket))
    problems.push('bucket is not a bucket name');
  if (typeof raw.prefix !== 'string' || !PREFIX_PATTERN.test(raw.prefix)) {
    problems.push(`prefix ${JSON.stringify(raw.prefix)} does not match ${PREFIX_PATTERN}`);
  }
  if (!Array.isArray(raw.entries)) problems.push('entries must be a list');
  return problems;
}

function entryProblems(
  entries: readonly unknown[],
  prefix: string,
  check: (e: Record<string, unknown>) => string | undefined,
): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    if (problems.length >= 10) return;
    if (!isRecord(e) || typeof e.key !== 'string') {
      problems.push(`entries[${i}] has no key`);
      return;
    }
    if (segmentName(e.key, prefix) === undefined) {
      problems.push(`entries[${i}].key ${JSON.stringify(e.key)} is not a file name under ${prefix}`);
      return;
    }
    if (seen.has(e.key)) problems.push(`entries[${i}].key ${JSON.stringify(e.key)} appears twice`);
    seen.add(e.key);
    const problem = check(e);
    if (problem !== undefined) problems.push(`entries[${i}] (${e.key}): ${problem}`);
  });
  return problems;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Parses and checks an upload manifest: header, every key under its prefix, sizes and hashes. */
export function parseUploadManifest(text: string): ParseResult<UploadManifest> {
  const raw = parseJson(text);
  if (!isRecord(raw)) return { ok: false, problems: ['the manifest is not a JSON object'] };
  const problems = headerProblems(raw, UPLOAD_MANIFEST_KIND);
  if (typeof raw.createdAt !== 'string') problems.push('createdAt must be a string');
  if (problems.length === 0) {
    problems.push(
      ...entryProblems(raw.entries as unknown[], raw.prefix as string, (e) => {
        if (!UPLOAD_STATUSES.includes(e.status as UploadStatus))
          return `unknown status ${JSON.stringify(e.status)}`;
        const needsHash = e.status !== 'failed';
        if ((needsHash || e.size !== undefined) && !isSize(e.size))
          return 'size must be a whole number of bytes';
        if (
          (needsHash || e.sha256 !== undefined) &&
          !(typeof e.sha256 === 'string' && SHA256_HEX.test(e.sha256))
        ) {
          return 'sha256 must be 64 lowercase hex digits';
        }
        return undefined;
      }),
    );
  }
  return problems.length > 0
    ? { ok: false, problems }
    : { ok: true, manifest: raw as unknown as UploadManifest };
}

/** Parses and checks a verified manifest (the same checks the delete script makes). */
export function parseVerifiedManifest(text: string): ParseResult<VerifiedManifest> {
  const raw = parseJson(text);
  if (!isRecord(raw)) return { ok: false, problems: ['the manifest is not a JSON object'] };
  const problems = headerProblems(raw, VERIFIED_MANIFEST_KIND);
  if (problems.length === 0) {
    problems.push(
      ...entryProblems(raw.entries as unknown[], raw.prefix as string, (e) => {
        if (e.status !== 'verified') return 'status must be verified';
        if (!isSize(e.size)) return 'size must be a whole number of bytes';
        if (!(typeof e.sha256 === 'string' && SHA256_HEX.test(e.sha256)))
          return 'sha256 must be 64 lowercase hex digits';
        return undefined;
      }),
    );
  }
  return problems.length > 0
    ? { ok: false, problems }
    : { ok: true, manifest: raw as unknown as VerifiedManifest };
}
