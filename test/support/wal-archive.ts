import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { logger } from '../../lambda/shared/powertools';
import { uploadManifestKey } from '../../lambda/shared/wal-manifest';
import { type VerifyArchiveResult, verifyArchive } from '../../lambda/verify-archive';
import type { CommandDocumentContent } from '../../lib/command-document';
import {
  type RunOptions,
  type RunResult,
  runCommandDocument,
  synthesizeCommandDocument,
} from './command-document-runner';
import { type MotoServer, startMotoServer, TEST_REGION } from './moto-server';

/**
 * Shared parts of the WAL archive tests (archive-wal*.test.ts, verify-archive.lambda.test.ts): the test
 * bed (moto_server, S3 client, temp root, fresh buckets and nodes), segment files with chosen
 * ages, the three phases run the way production runs them (the synthesized Command documents
 * through the local SSM runner, the Lambda logic with a real S3 client), and the final check
 * that nothing was lost.
 */

export const DAY_MS = 86_400_000;

// The Lambda logs every mismatch; the tests assert on its result instead.
logger.setLogLevel('SILENT');

let docs: { archive: CommandDocumentContent; remove: CommandDocumentContent } | undefined;

/** The ArchiveWal and DeleteArchivedWal documents as CloudFormation would get them (cached). */
export function walDocuments(): { archive: CommandDocumentContent; remove: CommandDocumentContent } {
  docs ??= {
    archive: synthesizeCommandDocument('ArchiveWal'),
    remove: synthesizeCommandDocument('DeleteArchivedWal'),
  };
  return docs;
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes `content` to `dir/name` with its mtime `ageDays` in the past; returns its SHA-256. */
export function writeSegment(dir: string, name: string, content: Buffer | string, ageDays: number): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  setAgeDays(path, ageDays);
  return sha256Hex(content);
}

export function setAgeDays(path: string, ageDays: number): void {
  const t = new Date(Date.now() - ageDays * DAY_MS);
  utimesSync(path, t, t);
}

/** Name → SHA-256 of every regular file directly in `dir`. */
export function localSegments(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile()) out.set(e.name, sha256Hex(readFileSync(join(dir, e.name))));
  }
  return out;
}

export function s3Client(moto: MotoServer): S3Client {
  return new S3Client({
    endpoint: moto.endpoint,
    region: TEST_REGION,
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
}

let bucketCounter = 0;

/** A fresh bucket (one per test keeps tests independent on a shared moto_server). */
export async function newBucket(s3: S3Client): Promise<string> {
  bucketCounter += 1;
  const bucket = `wal-archive-${process.pid}-${bucketCounter}`;
  await s3.send(
    new CreateBucketCommand({
      Bucket: bucket,
      CreateBucketConfiguration: { LocationConstraint: TEST_REGION },
    }),
  );
  return bucket;
}

/** Every key in the bucket (paginated). */
export async function listKeys(s3: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
    token = page.NextContinuationToken;
  } while (token !== undefined);
  return keys.sort();
}

/** SHA-256 (hex) of the object's body, read back from S3; undefined when it is not there. */
export async function storedSha256(s3: S3Client, bucket: string, key: string): Promise<string | undefined> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const body = await res.Body?.transformToByteArray();
    return body === undefined ? undefined : sha256Hex(Buffer.from(body));
  } catch {
    return undefined;
  }
}

/** The stored ChecksumSHA256 of an object, as S3 reports it (base64). */
export async function storedChecksum(s3: S3Client, bucket: string, key: string): Promise<string | undefined> {
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }));
  return head.ChecksumSHA256;
}

/** Puts an object the way a foreign writer would (no conditions). */
export async function putObject(
  s3: S3Client,
  bucket: string,
  key: string,
  body: Buffer | string,
): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ChecksumAlgorithm: 'SHA256' }));
}

/**
 * The "nothing lost" check: the names of original segments that are neither on disk with the
 * same SHA-256 nor in S3 (body read back and hashed) with it. Empty means nothing was lost.
 * With `s3` undefined (the server is gone), only the disk counts.
 */
export async function lostSegments(
  originals: ReadonlyMap<string, string>,
  walDir: string,
  s3: S3Client | undefined,
  bucket: string,
  prefix: string,
): Promise<string[]> {
  const local = localSegments(walDir);
  const missing = [...originals].filter(([name, sha]) => local.get(name) !== sha);
  const lost: string[] = [];
  const queue = [...missing];
  const worker = async (): Promise<void> => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      const [name, sha] = item;
      const stored = s3 === undefined ? undefined : await storedSha256(s3, bucket, prefix + name);
      if (stored !== sha) lost.push(name);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return lost.sort();
}

/** One node's archive setup: where its WAL is, and where it goes. */
export interface WalTarget {
  readonly walDir: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly node: string;
  readonly endpoint: string;
  /** Environment for the scripts: moto credentials and region, plus stand-ins on PATH if any. */
  readonly env: NodeJS.ProcessEnv;
}

/** Fails the test unless every segment of `originals` is on `t`'s disk or in its S3 prefix with the same SHA-256. */
export async function expectNothingLost(
  s3: S3Client,
  t: WalTarget,
  originals: ReadonlyMap<string, string>,
): Promise<void> {
  expect(await lostSegments(originals, t.walDir, s3, t.bucket, t.prefix)).toEqual([]);
}

/**
 * `n` old segments `wal-000000.log`.. of `bytes` bytes each (40 days old and down, a millisecond
 * of a day apart) and a newest one, `wal-newest.log` (20 days old), in `t`'s WAL directory;
 * returns name → SHA-256.
 */
export function oldSegmentsAndNewest(t: WalTarget, n: number, bytes: number): Map<string, string> {
  const originals = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const name = `wal-${String(i).padStart(6, '0')}.log`;
    originals.set(name, writeSegment(t.walDir, name, Buffer.alloc(bytes, `segment ${i} `), 40 - i / 1000));
  }
  originals.set('wal-newest.log', writeSegment(t.walDir, 'wal-newest.log', 'newest', 20));
  return originals;
}

export function walTarget(
  moto: MotoServer,
  root: string,
  bucket: string,
  node = 'node-1',
  env: NodeJS.ProcessEnv = {},
): WalTarget {
  const walDir = join(root, node, 'wal');
  mkdirSync(walDir, { recursive: true });
  return {
    walDir,
    bucket,
    prefix: `wal/${node}/`,
    node,
    endpoint: moto.endpoint,
    env: { ...moto.env, ...env },
  };
}

/** What an archive test file shares: one moto_server, an S3 client for it, and a temp root. */
export interface ArchiveTestBed {
  readonly moto: MotoServer;
  /** An S3 client of moto_server (path style, one attempt). */
  readonly s3: S3Client;
  /** A temp directory for the nodes' WAL directories and anything else the tests make. */
  readonly root: string;
  /** A fresh bucket on moto_server. */
  newBucket(): Promise<string>;
  /** A new node (`node-1`, `node-2`, ...) under `root` with its own fresh bucket. */
  target(env?: NodeJS.ProcessEnv): Promise<WalTarget>;
  /** Stops moto_server and removes `root`. */
  cleanup(): Promise<void>;
}

/**
 * The test bed of one archive test file: started in `beforeAll` (moto_server and a temp root named
 * `<tmpPrefix>XXXXXX`) and cleaned up in `afterAll`. Call it at the top of the file:
 *
 * ```ts
 * const bed = useArchiveTestBed('archive-wal-test-');
 * ```
 *
 * The returned bed may be used from the hooks and tests on (before `beforeAll` it throws).
 */
export function useArchiveTestBed(tmpPrefix: string): ArchiveTestBed {
  let started: ArchiveTestBed | undefined;
  beforeAll(async () => {
    started = await startArchiveTestBed(tmpPrefix);
  });
  afterAll(() => started?.cleanup());
  const bed = (): ArchiveTestBed => {
    if (started === undefined) throw new Error(`the archive test bed ${tmpPrefix} is used before beforeAll`);
    return started;
  };
  return {
    get moto() {
      return bed().moto;
    },
    get s3() {
      return bed().s3;
    },
    get root() {
      return bed().root;
    },
    newBucket: () => bed().newBucket(),
    target: (env) => bed().target(env),
    cleanup: () => bed().cleanup(),
  };
}

/** Starts moto_server and makes a temp root named `<tmpPrefix>XXXXXX`. */
async function startArchiveTestBed(tmpPrefix: string): Promise<ArchiveTestBed> {
  const root = mkdtempSync(join(tmpdir(), tmpPrefix));
  let moto: MotoServer;
  try {
    moto = await startMotoServer();
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  const s3 = s3Client(moto);
  let nodes = 0;
  return {
    moto,
    s3,
    root,
    newBucket: () => newBucket(s3),
    async target(env: NodeJS.ProcessEnv = {}) {
      nodes += 1;
      return walTarget(moto, root, await newBucket(s3), `node-${nodes}`, env);
    },
    async cleanup() {
      try {
        await moto.stop();
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

/** Runs one of the WAL Command documents on a target: `(target, parameter overrides, run options)`. */
export type WalDocumentRun = (
  t: WalTarget,
  overrides?: Record<string, string>,
  opts?: RunOptions,
) => Promise<RunResult>;

/**
 * A runner of the `document` WAL Command document: the target's WalDir, Bucket, Prefix and
 * EndpointUrl, then `defaults`, then the caller's overrides; 120 s unless the options say
 * otherwise, with the target's environment under the options' own.
 */
function walDocumentRun(
  document: keyof ReturnType<typeof walDocuments>,
  defaults: Readonly<Record<string, string>>,
): WalDocumentRun {
  return async (t, overrides = {}, opts = {}) =>
    await runCommandDocument(
      walDocuments()[document],
      {
        WalDir: t.walDir,
        Bucket: t.bucket,
        Prefix: t.prefix,
        EndpointUrl: t.endpoint,
        ...defaults,
        ...overrides,
      },
      { timeoutMs: 120_000, ...opts, env: { ...t.env, ...opts.env } },
    );
}

/** Runs the ArchiveWal document (upload phase). */
export const runArchive = walDocumentRun('archive', {
  OlderThanDays: '7',
  Concurrency: '4',
  DryRun: 'false',
});

/** Runs the DeleteArchivedWal document (delete phase). */
export const runDelete = walDocumentRun('remove', { DryRun: 'false' });

/** Runs the verify phase: the Lambda's logic with a real S3 client, as the Automation calls it. */
export async function runVerify(
  s3: S3Client,
  t: WalTarget,
  overrides: Record<string, unknown> = {},
): Promise<VerifyArchiveResult> {
  return await verifyArchive(
    s3,
    {
      bucket: t.bucket,
      manifestKey: uploadManifestKey(t.prefix),
      expectedPrefix: t.prefix,
      node: t.node,
      dryRun: false,
      ...overrides,
    },
    { retry: { sleep: async () => {} } },
  );
}

/** A pass-through HTTP proxy on 127.0.0.1 in front of a moto_server (faults between a client and S3). */
export interface S3Proxy {
  /** `http://127.0.0.1:<port>`: give it as a target's `endpoint`. */
  readonly endpoint: string;
  /** Drops every connection and stops listening. */
  close(): void;
}

/** What an `S3Proxy` does besides passing requests on. */
export interface S3ProxyHooks {
  /** Answers `req` itself instead of passing it on, when it returns true. @default passes all on */
  intercept?(req: IncomingMessage, res: ServerResponse): boolean;
  /** Called once moto_server's whole answer to `req` has been passed on. @default nothing */
  answered?(req: IncomingMessage, statusCode: number | undefined, res: ServerResponse): void;
}

/** Starts an `S3Proxy` to the moto_server on `motoPort`. */
async function startS3Proxy(motoPort: number, hooks: S3ProxyHooks = {}): Promise<S3Proxy> {
  const server = createServer((req, res) => {
    if (hooks.intercept?.(req, res) === true) return;
    const upstream = request(
      { host: '127.0.0.1', port: motoPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
        up.on('end', () => hooks.answered?.(req, up.statusCode, res));
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return {
    endpoint: `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

/**
 * For one describe block (or file): the returned function starts an `S3Proxy` to the moto_server
 * on `motoPort`, and every proxy it started is closed after each test.
 */
export function useS3Proxies(): (motoPort: number, hooks?: S3ProxyHooks) => Promise<S3Proxy> {
  const open: S3Proxy[] = [];
  afterEach(() => {
    for (const proxy of open.splice(0)) proxy.close();
  });
  return async (motoPort, hooks) => {
    const proxy = await startS3Proxy(motoPort, hooks);
    open.push(proxy);
    return proxy;
  };
}

/** Fails with the script's stderr when it did not exit 0 (the message shows why). */
export function expectExit0(r: RunResult): Record<string, unknown> {
  if (r.exitCode !== 0 || r.lastJson === undefined) {
    throw new Error(
      `exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}\nstderr:\n${r.stderr}\nstdout:\n${r.stdout}`,
    );
  }
  return r.lastJson;
}
