import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ParameterValidationError,
  runCommandDocument,
  runScriptDirectly,
} from './support/command-document-runner';
import { walDocuments } from './support/wal-archive';

/**
 * Hostile values for every parameter of ArchiveWal and DeleteArchivedWal are rejected by the
 * documents' patterns before any shell runs (the runner, like SendCommand, throws and spawns
 * nothing), and again by the scripts themselves when they are run by hand.
 */

const marker = join(tmpdir(), `pwned-archive-wal-${process.pid}`);
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'archive-wal-params-'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(marker, { force: true });
});

const INJECTIONS = [
  `; touch ${marker}`,
  `$(touch ${marker})`,
  `\`touch ${marker}\``,
  `| touch ${marker}`,
  `&& touch ${marker}`,
  `x\ntouch ${marker}`,
  "'; touch /tmp/x; '",
  '"quoted"',
  '{{ InstanceId }}',
  '',
];

const HOSTILE: Record<string, readonly string[]> = {
  WalDir: [
    ...INJECTIONS,
    '/data/../etc',
    '/data/..',
    '/..',
    '/data/./wal',
    '/data/.hidden',
    'data/wal',
    '/data wal',
    '/data/wal\n',
    '/*',
  ],
  Bucket: [
    ...INJECTIONS,
    'a..b',
    'Bucket',
    '-bucket',
    'bucket-',
    'a.-b',
    'b',
    'x'.repeat(64).concat('\n'),
    'bucket/key',
    'bucket name',
  ],
  Prefix: [
    ...INJECTIONS,
    'wal/node-1',
    '/wal/node-1/',
    '../wal/',
    'wal/../x/',
    'wal/./',
    'wal//',
    'wal/node 1/',
    'wal/*/',
    'wal/.hidden/',
  ],
  OlderThanDays: [...INJECTIONS, '-1', '1.5', '10000', '7 ', ' 7', '0x10', '7d'],
  Concurrency: [...INJECTIONS, '0', '65', '-1', '08', '1e3', '4 '],
  DryRun: [...INJECTIONS, 'yes', 'TRUE', '1', 'true ', 'true\n'],
  EndpointUrl: [
    ...INJECTIONS.filter((v) => v !== ''),
    'ftp://127.0.0.1',
    'http://127.0.0.1:9000/path',
    'http://user@host',
    'http://host:port',
    'https://host/../',
    'http://127.0.0.1:1 --no-verify-ssl',
    'http://127.0.0.1:1\n',
  ],
};

const VALID_ARCHIVE = {
  WalDir: '/data/wal',
  Bucket: 'stemedb-wal-archive',
  Prefix: 'wal/node-1/',
  OlderThanDays: '30',
  Concurrency: '8',
  DryRun: 'true',
  EndpointUrl: '',
};
const VALID_DELETE = {
  WalDir: '/data/wal',
  Bucket: 'stemedb-wal-archive',
  Prefix: 'wal/node-1/',
  DryRun: 'true',
  EndpointUrl: '',
};

describe('ArchiveWal parameters', () => {
  const cases = Object.entries(HOSTILE).flatMap(([name, values]) => values.map((v) => [name, v] as const));
  it.each(cases)('rejects %s = %j before any shell runs', async (name, value) => {
    const run = runCommandDocument(
      walDocuments().archive,
      { ...VALID_ARCHIVE, [name]: value },
      { cwd: work },
    );
    await expect(run).rejects.toBeInstanceOf(ParameterValidationError);
    await expect(run).rejects.toThrow(new RegExp(`${name}: `));
    expect(existsSync(marker)).toBe(false);
  });

  it.each([
    ['WalDir', '/var/lib/stemedb/wal'],
    ['WalDir', '/data/wal/'],
    ['Bucket', 'stemedb.wal-archive.eu-west-1'],
    ['Prefix', 'archive/wal/node_7.a/'],
    ['OlderThanDays', '0'],
    ['Concurrency', '64'],
    ['EndpointUrl', 'https://bucket.vpce-0123-abcd.s3.eu-west-1.vpce.amazonaws.com'],
    ['EndpointUrl', 'http://127.0.0.1:9000'],
  ])('accepts %s = %j', (name, value) => {
    const pattern = walDocuments().archive.parameters?.[name]?.allowedPattern ?? '';
    expect(new RegExp(pattern).test(value)).toBe(true);
  });
});

describe('DeleteArchivedWal parameters', () => {
  const names = Object.keys(VALID_DELETE);
  const cases = Object.entries(HOSTILE)
    .filter(([name]) => names.includes(name))
    .flatMap(([name, values]) => values.map((v) => [name, v] as const));
  it.each(cases)('rejects %s = %j before any shell runs', async (name, value) => {
    const run = runCommandDocument(walDocuments().remove, { ...VALID_DELETE, [name]: value }, { cwd: work });
    await expect(run).rejects.toBeInstanceOf(ParameterValidationError);
    expect(existsSync(marker)).toBe(false);
  });

  it('rejects parameters the document does not declare', async () => {
    await expect(
      runCommandDocument(walDocuments().remove, { ...VALID_DELETE, OlderThanDays: '1' }, { cwd: work }),
    ).rejects.toThrow(/OlderThanDays: unknown parameter/);
  });
});

describe('the scripts check their parameters again when run by hand', () => {
  const runScript = (script: string, parameters: Record<string, string>) =>
    runScriptDirectly(script, parameters, { cwd: work });

  const cases = Object.entries(HOSTILE).flatMap(([name, values]) =>
    values.filter((v) => v !== '' || name !== 'EndpointUrl').map((v) => [name, v] as const),
  );
  it.each(cases)('archive-wal.sh refuses %s = %j with a one-line reason', (name, value) => {
    const r = runScript('archive-wal.sh', { ...VALID_ARCHIVE, [name]: value });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^archive-wal: ${name} `));
    expect(r.stdout).toBe('');
    expect(existsSync(marker)).toBe(false);
  });

  it.each(cases.filter(([name]) => Object.keys(VALID_DELETE).includes(name)))(
    'delete-archived-wal.sh refuses %s = %j with a one-line reason',
    (name, value) => {
      const r = runScript('delete-archived-wal.sh', { ...VALID_DELETE, [name]: value });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^delete-archived-wal: ${name} `));
      expect(existsSync(marker)).toBe(false);
    },
  );
});
