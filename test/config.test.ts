import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  ConfigError,
  DEFAULT_CONFIG,
  nodeStackResourceCount,
  readRawConfig,
  resolveConfig,
  stackResourceCount,
} from '../lib/config';

/**
 * The resolved defaults, written out once: changing a default means changing this file too, on
 * purpose (the tests compare DEFAULT_CONFIG and resolveConfig({}) with it, not with themselves).
 */
const DEFAULT_CONFIG_FIXTURE = JSON.parse(
  readFileSync(join(__dirname, 'fixtures', 'default-config.json'), 'utf8'),
) as typeof DEFAULT_CONFIG;

const node = (over: Record<string, unknown> = {}) => ({
  name: 'db-1',
  instanceId: 'i-0123456789abcdef0',
  availabilityZone: 'eu-west-1a',
  dataVolume: { sizeGiB: 100 },
  ...over,
});

/** Resolves and returns the single error message, failing the test when it does not throw. */
function problemsOf(raw: Record<string, unknown>): string {
  try {
    resolveConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration defaults', () => {
  it('applies the documented defaults to an empty configuration', () => {
    const c = resolveConfig({});
    expect(c).toEqual(DEFAULT_CONFIG);
    expect(c).toEqual(DEFAULT_CONFIG_FIXTURE);
    expect(c.prefix).toBe('StemeDB');
    expect(c.walDir).toBe('/data/wal');
    expect(c.healthUrl).toBe('http://localhost:18180/v1/health');
    expect(c.configFile).toBe('/etc/stemedb/config.toml');
    expect(c.fstabFile).toBe('/etc/fstab');
    expect(c.wal).toMatchObject({ retentionDays: 7, archiveAfterDays: 30 });
    expect(c.thresholds).toMatchObject({
      warningFreePercent: 20,
      criticalFreePercent: 10,
      inodeWarningFreePercent: 10,
    });
  });

  it('fills a data volume with gp3 and /dev/sdf', () => {
    const c = resolveConfig({ nodes: [node()] });
    expect(c.nodes[0]?.dataVolume).toEqual({ sizeGiB: 100, type: 'gp3', deviceName: '/dev/sdf' });
  });

  it('merges nested sections key by key', () => {
    const c = resolveConfig({ expansion: { maxSizeGiB: 500 } });
    expect(c.expansion).toEqual({ ...DEFAULT_CONFIG.expansion, maxSizeGiB: 500 });
  });
});

describe('configuration sources', () => {
  it('lets a stemedbConfig file win over the cdk.json context object', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stemedb-config-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ prefix: 'Prod', thresholds: { warningMinutes: 30 } }));
    const raw = readRawConfig({ prefix: 'Dev', dataMount: '/srv', thresholds: { criticalMinutes: 3 } }, file);
    expect(raw).toEqual({
      prefix: 'Prod',
      dataMount: '/srv',
      thresholds: { criticalMinutes: 3, warningMinutes: 30 },
    });
  });

  it('accepts the context object as a JSON string (-c stemedb=...)', () => {
    expect(readRawConfig('{"prefix":"Cli"}', undefined)).toEqual({ prefix: 'Cli' });
  });

  it('names a config file that cannot be read', () => {
    expect(() => readRawConfig(undefined, '/nonexistent/stemedb.json')).toThrow(
      /stemedbConfig file \/nonexistent\/stemedb.json cannot be read/,
    );
  });

  it('names a config file that is not JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stemedb-config-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{ nodes: [');
    expect(() => readRawConfig(undefined, file)).toThrow(/stemedbConfig file .*bad.json is not valid JSON/);
  });
});

describe('configuration validation names the key, the value and the accepted form', () => {
  const cases: ReadonlyArray<[string, Record<string, unknown>, RegExp]> = [
    ['unknown top-level key', { prefx: 'X' }, /prefx is not a configuration key; accepted keys: prefix/],
    [
      'unknown nested key',
      { expansion: { growPercnt: 5 } },
      /expansion.growPercnt is not a configuration key/,
    ],
    [
      'prefix with a dash',
      { prefix: 'Steme-DB' },
      /prefix is "Steme-DB"; expected a letter then up to 19 letters or digits/,
    ],
    ['prefix reserved by SSM', { prefix: 'AwsDb' }, /prefix is "AwsDb".*not starting with "AWS"/],
    ['relative data mount', { dataMount: 'data' }, /dataMount is "data"; expected an absolute path/],
    [
      'path with ..',
      { backupDir: '/backups/../etc' },
      /backupDir is "\/backups\/..\/etc"; expected .* no ".." segment/,
    ],
    [
      'relative configFile',
      { configFile: 'config.toml' },
      /configFile is "config.toml"; expected an absolute path/,
    ],
    [
      'configFile with ..',
      { configFile: '/etc/stemedb/../shadow' },
      /configFile is "\/etc\/stemedb\/..\/shadow"; expected .* no ".." segment/,
    ],
    [
      'configFile with a shell metacharacter',
      { configFile: '/etc/stemedb/config.toml;reboot' },
      /configFile is "\/etc\/stemedb\/config.toml;reboot"; expected an absolute path/,
    ],
    [
      'relative fstabFile',
      { fstabFile: 'etc/fstab' },
      /fstabFile is "etc\/fstab"; expected an absolute path/,
    ],
    [
      'fstabFile with ..',
      { fstabFile: '/etc/../shadow' },
      /fstabFile is "\/etc\/..\/shadow"; expected .* no ".." segment/,
    ],
    [
      'fstabFile with a shell metacharacter',
      { fstabFile: '/etc/fstab$(reboot)' },
      /fstabFile is "\/etc\/fstab\$\(reboot\)"; expected an absolute path/,
    ],
    [
      'walDir outside the data mount',
      { walDir: '/var/wal' },
      /walDir is "\/var\/wal"; expected a directory inside dataMount \(\/data\)/,
    ],
    [
      'service name with a space',
      { serviceName: 'stemedb api' },
      /serviceName is "stemedb api"; expected a systemd unit name/,
    ],
    [
      'health URL off the host',
      { healthUrl: 'http://10.0.0.1/v1/health' },
      /healthUrl is "http:\/\/10.0.0.1\/v1\/health"; expected an http URL on localhost/,
    ],
    [
      'threshold out of range',
      { thresholds: { warningFreePercent: 120 } },
      /thresholds.warningFreePercent is 120; expected a number above 0 and below 100/,
    ],
    [
      'thresholds out of order',
      { thresholds: { criticalFreePercent: 25 } },
      /emergencyFreePercent \(5\) < criticalFreePercent \(25\) < warningFreePercent \(20\) must hold/,
    ],
    [
      'minutes not whole',
      { thresholds: { warningMinutes: 2.5 } },
      /thresholds.warningMinutes is 2.5; expected a whole number of minutes/,
    ],
    [
      'recovered level inside warning',
      { thresholds: { recoveredUsedPercent: 90 } },
      /recoveredUsedPercent \(90\) must be at most 100 - warningFreePercent \(80\)/,
    ],
    [
      'critical slower than warning',
      { thresholds: { criticalMinutes: 30 } },
      /criticalMinutes \(30\) must be at most warningMinutes \(15\)/,
    ],
    [
      'grow percent zero',
      { expansion: { growPercent: 0 } },
      /expansion.growPercent is 0; expected a whole number from 1 to 1000/,
    ],
    [
      'max size above every type',
      { expansion: { maxSizeGiB: 70000 } },
      /expansion.maxSizeGiB is 70000; expected a whole number of GiB from 1 to 65536/,
    ],
    [
      'wal retention zero',
      { wal: { retentionDays: 0 } },
      /wal.retentionDays is 0; expected a whole number of days from 1 to 3650/,
    ],
    [
      'snapshot time not HH:MM',
      { snapshots: { timeUtc: '3am' } },
      /snapshots.timeUtc is "3am"; expected a time of day as HH:MM/,
    ],
    [
      'lifecycle transition too early',
      { archive: { transitionAfterDays: 7 } },
      /archive.transitionAfterDays is 7; expected a whole number of days from 30/,
    ],
    [
      'unknown remediation',
      { remediation: { critical: 'RebootEverything' } },
      /remediation.critical is "RebootEverything"; expected "" \(none\) or one of/,
    ],
    [
      'remediation that the stack does not deploy',
      { remediation: { inodes: 'AddDataVolume' } },
      /remediation.inodes is "AddDataVolume"; expected "" \(none\) or one of DiagnoseDiskFull/,
    ],
    ['bad email', { notifyEmails: ['oncall'] }, /notifyEmails\[0\] is "oncall"; expected an email address/],
    [
      'bad workspace id',
      { prometheusWorkspaceId: 'my-workspace' },
      /prometheusWorkspaceId is "my-workspace"; expected an Amazon Managed Service for Prometheus workspace ID/,
    ],
    ['nodes not a list', { nodes: 'db-1' }, /nodes is "db-1"; expected a list of nodes/],
    [
      'node name with upper case',
      { nodes: [node({ name: 'DB1' })] },
      /nodes\[0\].name is "DB1"; expected 2 to 32 lower-case letters/,
    ],
    [
      'instance id malformed',
      { nodes: [node({ instanceId: 'i-123' })] },
      /nodes\[0\].instanceId is "i-123"; expected an EC2 instance ID such as i-0123456789abcdef0/,
    ],
    [
      'availability zone is a region',
      { nodes: [node({ availabilityZone: 'eu-west-1' })] },
      /nodes\[0\].availabilityZone is "eu-west-1"; expected an Availability Zone name/,
    ],
    [
      'both volume kinds',
      { nodes: [node({ existingVolumeId: 'vol-0123456789abcdef0' })] },
      /nodes\[0\] must have exactly one of dataVolume .* and existingVolumeId/,
    ],
    [
      'neither volume kind',
      { nodes: [node({ dataVolume: undefined })] },
      /nodes\[0\] must have exactly one of dataVolume/,
    ],
    [
      'existing volume id malformed',
      { nodes: [node({ dataVolume: undefined, existingVolumeId: 'vol-xyz' })] },
      /nodes\[0\].existingVolumeId is "vol-xyz"; expected an EBS volume ID/,
    ],
    [
      'unknown volume type',
      { nodes: [node({ dataVolume: { sizeGiB: 10, type: 'gp4' } })] },
      /nodes\[0\].dataVolume.type is "gp4"; expected one of gp3, io2, io1, gp2, st1, sc1, standard/,
    ],
    [
      'gp3 too large',
      { nodes: [node({ dataVolume: { sizeGiB: 70000 } })] },
      /nodes\[0\].dataVolume.sizeGiB is 70000; expected a whole number of GiB from 1 to 65536 for gp3/,
    ],
    [
      'gp2 above its 16 TiB',
      { nodes: [node({ dataVolume: { sizeGiB: 20000, type: 'gp2' } })] },
      /sizeGiB is 20000; expected a whole number of GiB from 1 to 16384 for gp2/,
    ],
    [
      'st1 below its minimum',
      { nodes: [node({ dataVolume: { sizeGiB: 100, type: 'st1' } })] },
      /sizeGiB is 100; expected a whole number of GiB from 125 to 16384 for st1/,
    ],
    [
      'gp3 iops above 500 per GiB',
      { nodes: [node({ dataVolume: { sizeGiB: 10, iops: 6000 } })] },
      /dataVolume.iops is 6000; expected a whole number from 3000 to 5000 for a 10 GiB gp3 volume/,
    ],
    [
      'gp3 throughput above 0.25 per IOPS',
      { nodes: [node({ dataVolume: { sizeGiB: 100, throughput: 1000 } })] },
      /dataVolume.throughput is 1000; expected a whole number of MiB\/s from 125 to 750 for 3000 IOPS/,
    ],
    [
      'io2 without iops',
      { nodes: [node({ dataVolume: { sizeGiB: 100, type: 'io2' } })] },
      /dataVolume.iops is required for io2 volumes/,
    ],
    [
      'io1 iops above its limit',
      { nodes: [node({ dataVolume: { sizeGiB: 2000, type: 'io1', iops: 70000 } })] },
      /dataVolume.iops is 70000; expected a whole number from 100 to 64000/,
    ],
    [
      'iops on gp2',
      { nodes: [node({ dataVolume: { sizeGiB: 100, type: 'gp2', iops: 3000 } })] },
      /dataVolume.iops is set, but gp2 volumes do not take provisioned IOPS/,
    ],
    [
      'throughput on io2',
      { nodes: [node({ dataVolume: { sizeGiB: 100, type: 'io2', iops: 1000, throughput: 200 } })] },
      /dataVolume.throughput is set, but only gp3 volumes take a throughput/,
    ],
    [
      'device name outside sdf-sdp',
      { nodes: [node({ dataVolume: { sizeGiB: 10, deviceName: '/dev/sda1' } })] },
      /dataVolume.deviceName is "\/dev\/sda1"; expected a device name from \/dev\/sdf/,
    ],
    [
      'duplicate node names',
      { nodes: [node(), node({ instanceId: 'i-0fedcba9876543210' })] },
      /nodes\[1\].name "db-1" is used twice/,
    ],
    [
      'duplicate instances',
      { nodes: [node(), node({ name: 'db-2' })] },
      /nodes\[1\].instanceId "i-0123456789abcdef0" is used twice/,
    ],
    ['unknown node key', { nodes: [node({ size: 10 })] }, /nodes\[0\].size is not a node key/],
    [
      'a migrateWhenRefused that is not a boolean',
      { remediation: { migrateWhenRefused: 'yes' } },
      /remediation.migrateWhenRefused is "yes"; expected true or false/,
    ],
  ];

  for (const [what, raw, message] of cases) {
    it(`rejects ${what}`, () => {
      expect(problemsOf(raw)).toMatch(message);
    });
  }

  it('reports every problem at once', () => {
    const message = problemsOf({ prefix: '1', dataMount: 'x', nodes: [node({ instanceId: 'bad' })] });
    expect(message).toMatch(/prefix is "1"/);
    expect(message).toMatch(/dataMount is "x"/);
    expect(message).toMatch(/nodes\[0\].instanceId is "bad"/);
  });
});

/** Every problem line of the ConfigError (each must be one line naming its key). */
function problemLines(raw: Record<string, unknown>): readonly string[] {
  try {
    resolveConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    for (const line of problems) expect(line).not.toContain('\n');
    return problems;
  }
  throw new Error('expected a ConfigError');
}

const nodes = (count: number, over: (i: number) => Record<string, unknown> = () => ({})) =>
  Array.from({ length: count }, (_, i) =>
    node({ name: `db-${i + 1}`, instanceId: `i-${(i + 1).toString(16).padStart(17, '0')}`, ...over(i) }),
  );

describe('configuration that would break or endanger a run is rejected, naming the keys', () => {
  const cases: ReadonlyArray<[string, Record<string, unknown>, RegExp]> = [
    [
      'walDir equal to dbDir',
      { walDir: '/data/db' },
      /^walDir and dbDir are both "\/data\/db"; .*ArchiveWal would archive and delete database files/,
    ],
    [
      'walDir equal to dbDir once normalised',
      { walDir: '/data/db/', dbDir: '/data//db' },
      /^walDir and dbDir are both "\/data\/db"/,
    ],
    [
      'walDir equal to the data mount',
      { walDir: '/data/' },
      /^walDir is "\/data", the data mount itself \(dataMount\); expected a directory inside it/,
    ],
    [
      'walDir equal to the data mount spelled with a dot',
      { walDir: '/data/.' },
      /^walDir is "\/data", the data mount itself \(dataMount\)/,
    ],
    [
      'dbDir inside walDir',
      { dbDir: '/data/wal/db' },
      /^dbDir "\/data\/wal\/db" is inside walDir "\/data\/wal"/,
    ],
    [
      'backupDir equal to walDir',
      { backupDir: '/data/wal' },
      /^backupDir and walDir are both "\/data\/wal"; .*backups would be archived and deleted as WAL/,
    ],
    ['backupDir equal to dbDir', { backupDir: '/data/db/' }, /^backupDir and dbDir are both "\/data\/db"/],
    [
      'configFile inside walDir',
      { configFile: '/data/wal/config.toml' },
      /^configFile "\/data\/wal\/config.toml" is inside walDir "\/data\/wal"; .*ArchiveWal archives and deletes every file in walDir/,
    ],
    [
      'configFile inside dbDir once normalised',
      { configFile: '/data//db/./stemedb.toml' },
      /^configFile "\/data\/db\/stemedb.toml" is inside dbDir "\/data\/db"/,
    ],
    [
      'configFile equal to walDir',
      { configFile: '/data/wal' },
      /^configFile "\/data\/wal" is walDir "\/data\/wal"/,
    ],
    [
      'fstabFile inside the data mount once normalised',
      { fstabFile: '/data//etc/./fstab' },
      /^fstabFile "\/data\/etc\/fstab" is inside dataMount "\/data"; .*MigrateDataVolume unmounts it/,
    ],
    ['fstabFile equal to dataMount', { fstabFile: '/data' }, /^fstabFile "\/data" is dataMount "\/data"/],
    [
      'fstabFile equal to configFile',
      { fstabFile: '/etc/stemedb/config.toml' },
      /^fstabFile and configFile are both "\/etc\/stemedb\/config.toml"/,
    ],
    [
      'a fstabFile with a hidden segment',
      { fstabFile: '/etc/.fstab' },
      /^fstabFile is "\/etc\/.fstab"; expected path segments that start with a letter/,
    ],
    [
      'a configFile with a hidden segment',
      { configFile: '/etc/stemedb/.config.toml' },
      /^configFile is "\/etc\/stemedb\/.config.toml"; expected path segments that start with a letter/,
    ],
    [
      'a path segment the documents refuse (hidden name)',
      { walDir: '/data/.wal' },
      /^walDir is "\/data\/.wal"; expected path segments that start with a letter, digit, "_" or "-"/,
    ],
    [
      'a duplicate existingVolumeId',
      {
        nodes: nodes(2, () => ({ dataVolume: undefined, existingVolumeId: 'vol-0123456789abcdef0' })),
      },
      /^nodes\[1\].existingVolumeId "vol-0123456789abcdef0" is used twice \(also nodes\[0\]\)/,
    ],
    [
      'maxSizeGiB below a node volume',
      { expansion: { maxSizeGiB: 50 }, nodes: nodes(2, (i) => ({ dataVolume: { sizeGiB: 20 + 80 * i } })) },
      /^expansion.maxSizeGiB \(50\) is below nodes\[1\].dataVolume.sizeGiB \(100\)/,
    ],
    [
      'minGrowGiB above maxSizeGiB',
      { expansion: { minGrowGiB: 600, maxSizeGiB: 500 } },
      /^expansion.minGrowGiB \(600\) is above expansion.maxSizeGiB \(500\)/,
    ],
  ];
  for (const [what, raw, message] of cases) {
    it(`rejects ${what}`, () => {
      expect(problemLines(raw)).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
    });
  }

  // Other spellings of each default path: each normalises to the default (the fixture's value).
  const spellings: ReadonlyArray<
    ['walDir' | 'dbDir' | 'backupDir' | 'dataMount' | 'configFile' | 'fstabFile', string]
  > = [
    ['walDir', '/data/./wal'],
    ['walDir', '/data//wal'],
    ['walDir', '/data/wal/'],
    ['dbDir', '//data/./db//'],
    ['backupDir', '/backups/./'],
    ['dataMount', '/data/'],
    ['configFile', '//etc/./stemedb//config.toml'],
    ['fstabFile', '/etc//./fstab'],
  ];
  it.each(spellings.map(([key, given]) => [key, given, DEFAULT_CONFIG_FIXTURE[key]]))(
    'normalises %s %j to %j once, the form every document accepts',
    (key, given, normal) => {
      const c = resolveConfig({ [key]: given }) as unknown as Record<string, string>;
      expect(c[key]).toBe(normal);
      for (const [doc, param, pattern] of documentPathPatterns()) {
        expect(new RegExp(pattern).test(normal), `${doc} ${param} ${pattern}`).toBe(true);
      }
    },
  );
});

/** [document, parameter, allowedPattern] of every path parameter of every SSM document. */
function documentPathPatterns(): Array<[string, string, string]> {
  const dir = join(__dirname, '..', 'ssm-documents');
  const out: Array<[string, string, string]> = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yml'))) {
    const doc = parseYaml(readFileSync(join(dir, file), 'utf8')) as {
      parameters?: Record<string, { allowedPattern?: string }>;
    };
    for (const [param, spec] of Object.entries(doc.parameters ?? {})) {
      if (
        ['MountPoint', 'WalDir', 'DbDir', 'BackupDir', 'ConfigFile'].includes(param) &&
        spec.allowedPattern
      ) {
        out.push([file, param, spec.allowedPattern]);
      }
    }
  }
  expect(out.length).toBeGreaterThan(10);
  return out;
}

describe('prevention and snapshot retention settings', () => {
  it('defaults to the runbook: journald 500M / 7day, daily compaction at 1000 MB, 7 backups, no association', () => {
    expect(resolveConfig({}).prevention).toEqual(DEFAULT_CONFIG_FIXTURE.prevention);
    expect(DEFAULT_CONFIG_FIXTURE.prevention).toMatchObject({
      journald: { systemMaxUse: '500M', maxRetentionSec: '7day', associate: false },
      storage: { compactionIntervalHours: 24, compactionThresholdMb: 1000, backupRetentionDays: 7 },
      scheduleDays: 1,
    });
    expect(resolveConfig({}).expansion).toMatchObject({
      snapshotsKept: 3,
      snapshotsDeleteAfterDays: 0,
      warnWithinPercent: 25,
    });
  });

  it('merges prevention.journald and prevention.storage key by key', () => {
    const c = resolveConfig({ prevention: { journald: { associate: true }, scheduleDays: 7 } });
    expect(c.prevention.journald).toEqual({ systemMaxUse: '500M', maxRetentionSec: '7day', associate: true });
    expect(c.prevention.storage).toEqual(DEFAULT_CONFIG.prevention.storage);
    expect(c.prevention.scheduleDays).toBe(7);
  });

  it.each([
    ['16M', true],
    ['16T', true],
    ['2G', true],
    ['15M', false],
    ['17T', false],
    ['500MB', false],
    ['500', false],
  ])('prevention.journald.systemMaxUse %j is accepted: %s', (value, ok) => {
    const run = () => resolveConfig({ prevention: { journald: { systemMaxUse: value } } });
    if (ok) expect(run).not.toThrow();
    else expect(run).toThrow(/prevention\.journald\.systemMaxUse is .*; expected journald's SystemMaxUse/);
  });

  it.each([
    ['1h', true],
    ['2week', true],
    ['10year', true],
    ['59min', false],
    ['11year', false],
    ['7days', false],
  ])('prevention.journald.maxRetentionSec %j is accepted: %s', (value, ok) => {
    const run = () => resolveConfig({ prevention: { journald: { maxRetentionSec: value } } });
    if (ok) expect(run).not.toThrow();
    else
      expect(run).toThrow(/prevention\.journald\.maxRetentionSec is .*; expected journald's MaxRetentionSec/);
  });

  const cases: ReadonlyArray<[string, Record<string, unknown>, RegExp]> = [
    [
      'an unknown prevention key',
      { prevention: { journal: {} } },
      /^prevention\.journal is not a configuration key/,
    ],
    [
      'an unknown key in prevention.storage',
      { prevention: { storage: { compaction: true } } },
      /^prevention\.storage\.compaction is not a configuration key; accepted: compactionEnabled/,
    ],
    [
      'prevention.journald not an object',
      { prevention: { journald: true } },
      /^prevention\.journald must be an object/,
    ],
    [
      'a string for a boolean',
      { prevention: { storage: { associate: 'yes' } } },
      /^prevention\.storage\.associate is "yes"; expected true or false/,
    ],
    [
      'compaction every 0 hours',
      { prevention: { storage: { compactionIntervalHours: 0 } } },
      /^prevention\.storage\.compactionIntervalHours is 0; expected a whole number of hours from 1 to 8760/,
    ],
    [
      'a fractional backup retention',
      { prevention: { storage: { backupRetentionDays: 7.5 } } },
      /^prevention\.storage\.backupRetentionDays is 7.5/,
    ],
    [
      'a schedule of 0 days',
      { prevention: { scheduleDays: 0 } },
      /^prevention\.scheduleDays is 0; expected a whole number of days from 1 to 30/,
    ],
    [
      'no pre-expansion snapshot kept',
      { expansion: { snapshotsKept: 0 } },
      /^expansion\.snapshotsKept is 0; expected a whole number of snapshots from 1 to 1000/,
    ],
    [
      'a negative deletion age',
      { expansion: { snapshotsDeleteAfterDays: -1 } },
      /^expansion\.snapshotsDeleteAfterDays is -1/,
    ],
    [
      'a warning margin above 100%',
      { expansion: { warnWithinPercent: 101 } },
      /^expansion\.warnWithinPercent is 101; expected a whole number from 0/,
    ],
  ];
  for (const [what, raw, message] of cases) {
    it(`rejects ${what}`, () => {
      expect(problemLines(raw)).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
    });
  }
});

describe('configuration that used to crash the synth is a one-line error naming the key', () => {
  const cases: ReadonlyArray<[string, Record<string, unknown>, RegExp]> = [
    [
      'a duplicate notifyEmails address',
      { notifyEmails: ['ops@example.com', 'oncall@example.com', 'ops@example.com'] },
      /^notifyEmails\[2\] "ops@example.com" is listed twice \(also notifyEmails\[0\]\)/,
    ],
    [
      'a notifyEmails address repeated in another case',
      { notifyEmails: ['ops@example.com', 'Ops@Example.com'] },
      /^notifyEmails\[1\] "Ops@Example.com" is listed twice/,
    ],
    [
      'a healthUrl port above 65535',
      { healthUrl: 'http://localhost:99999/v1/health' },
      /^healthUrl is "http:\/\/localhost:99999\/v1\/health"; expected .*a port from 1 to 65535/,
    ],
    [
      'a healthUrl port 0',
      { healthUrl: 'http://127.0.0.1:0/v1/health' },
      /^healthUrl is .*a port from 1 to 65535/,
    ],
    ['dataMount /', { dataMount: '/' }, /^dataMount is "\/"; expected the data volume's mount point, not \//],
    ['dataMount //', { dataMount: '//' }, /^dataMount is "\/"; expected the data volume's mount point/],
    [
      'a prefix starting with amzn',
      { prefix: 'amznDb' },
      /^prefix is "amznDb"; .*not starting with .*"amzn"/,
    ],
    ['a prefix starting with AMZN', { prefix: 'AMZNstemedb' }, /^prefix is "AMZNstemedb"; /],
    ['a prefix starting with Amazon', { prefix: 'AmazonDb' }, /^prefix is "AmazonDb"; /],
    [
      'more nodes than the shared stack holds',
      { nodes: nodes(17) },
      /^shard 0 \(stack StemeDB-Disk\) has 17 nodes \(db-1, .*, db-17\); the shared stack holds at most 16 nodes: give new nodes an explicit "shard" with room, or set fleet.shards/,
    ],
    [
      'more adopted-volume nodes than the shared stack holds',
      {
        nodes: nodes(17, (i) => ({
          dataVolume: undefined,
          existingVolumeId: `vol-${(i + 1).toString(16).padStart(17, '0')}`,
        })),
      },
      /^shard 0 \(stack StemeDB-Disk\) has 17 nodes .*the shared stack holds at most 16 nodes/,
    ],
    [
      'a selfManagedAlertmanager that is not a boolean',
      { selfManagedAlertmanager: 'yes' },
      /^selfManagedAlertmanager is "yes"; expected true or false/,
    ],
    [
      'more nodes than one node stack holds',
      { fleet: { shards: 1 }, nodes: nodes(31, () => ({ shard: 1 })) },
      /^shard 1 \(stack StemeDB-Disk-Nodes-1\) has 31 nodes \(db-1, .*, db-31\); a node stack holds at most 30 nodes/,
    ],
  ];
  for (const [what, raw, message] of cases) {
    it(`rejects ${what}`, () => {
      expect(problemLines(raw)).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
    });
  }

  it('accepts 16 nodes in the shared stack, and 30 more pinned to one node stack', () => {
    expect(resolveConfig({ nodes: nodes(16) }).nodes).toHaveLength(16);
    const more = nodes(46, (i) => ({ shard: i >= 16 ? 1 : 0 }));
    expect(resolveConfig({ fleet: { shards: 1 }, nodes: more }).nodes).toHaveLength(46);
  });

  it('counts the opted-in prevention associations: 16 nodes, 240 emails and one fit (500 of 500), both do not', () => {
    const emails = Array.from({ length: 240 }, (_, i) => `oncall${i}@example.com`);
    const one = { journald: { associate: true } };
    expect(resolveConfig({ nodes: nodes(16), notifyEmails: emails, prevention: one }).nodes).toHaveLength(16);
    const both = { journald: { associate: true }, storage: { associate: true } };
    expect(problemLines({ nodes: nodes(16), notifyEmails: emails, prevention: both })).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^shard 0 \(the shared stack StemeDB-Disk\) has 16 nodes; it holds at most 15 with this configuration \(CloudFormation's 500 resources per stack: 309 shared, 12 per node\)/,
        ),
      ]),
    );
  });

  it('counts the prevention and agent associations per 50 nodes of the whole fleet, in the shared stack', () => {
    const both = { journald: { associate: true }, storage: { associate: true } };
    const spread = nodes(120, (i) => ({ shard: 1 + (i % 4) }));
    const c = resolveConfig({ fleet: { shards: 4 }, nodes: spread, prevention: both });
    // 66 shared, the fleet dashboard, 3 agent installs and 2 × 3 prevention associations; no node of shard 0.
    expect(stackResourceCount(c)).toBe(66 + 1 + 3 + 6);
    expect(nodeStackResourceCount(c.nodes.filter((n) => n.shard === 1))).toBe(1 + 30 * 12);
  });
});
