import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { changedLines } from './support/changed-lines';
import { runCommandDocument } from './support/command-document-runner';
import {
  expectDeclaresWhatTheScriptReads,
  hostileValueTests,
  patternRangeProblems,
} from './support/hostile-parameters';
import {
  answersHealthy,
  cleanupsAfterEach,
  configRoot,
  expectSucceededWith,
  type ScriptHost,
  STANDIN_UNIT,
  startedStandin,
  synthesizedBeforeAll,
} from './support/service-bed';

/**
 * <prefix>-Host-StorageSettings (runbook "Prevention": automatic compaction in [storage], backup
 * retention in [backup]), as synthesized, on a real config.toml in a temp /etc/stemedb, with the
 * StemeDB stand-in (which parses the file at start) as the `stemedb-api` unit of a fake systemd.
 */

const SCRIPT = join(__dirname, '..', 'ssm-documents', 'scripts', 'storage-settings.sh');
const UNIT = STANDIN_UNIT;
const RUNBOOK = {
  CompactionEnabled: 'true',
  CompactionIntervalHours: '24',
  CompactionThresholdMb: '1000',
  BackupRetentionDays: '7',
  BackupCompressionEnabled: 'true',
};

const doc = synthesizedBeforeAll('StorageSettings');
const walDoc = synthesizedBeforeAll('WalCleanup');

const cleanups = cleanupsAfterEach();

interface Host extends ScriptHost {
  readonly configFile: string;
  readonly base: Record<string, string>;
  starts(): number;
  health(): Promise<boolean>;
}

/**
 * A host with `config` as /etc/stemedb/config.toml and the stand-in running as stemedb-api. With
 * `refuse`, the service exits at start when its config holds that line (a build rejecting a value).
 */
async function makeHost(config: string, opts: { refuse?: string; configMode?: number } = {}): Promise<Host> {
  const { root, etc, configFile } = configRoot(cleanups, 'storage-settings-test', config, opts.configMode);
  mkdirSync(join(root, 'data', 'wal'), { recursive: true });
  const refused = opts.refuse;
  const { systemd, healthUrl } = await startedStandin(cleanups, {
    dataDir: join(root, 'data'),
    configFile,
    startCheckMs: 500,
    wrap:
      refused === undefined
        ? undefined
        : (command) => [
            'sh',
            '-c',
            `if grep -qxF '${refused}' '${configFile}'; then echo "ERROR: invalid configuration: ${refused}"; exit 1; fi; exec "$@"`,
            'sh',
            ...command,
          ],
  });
  const base = {
    ConfigFile: configFile,
    ServiceName: UNIT,
    HealthUrl: healthUrl,
    HealthTimeoutSeconds: '15',
  };
  return {
    root,
    configFile,
    systemd,
    base,
    run: (params = {}) =>
      runCommandDocument(doc(), { ...base, ...RUNBOOK, DryRun: 'false', ...params }, { env: systemd.env }),
    files: () => readdirSync(etc).sort(),
    starts: () => systemd.journal(UNIT).filter((e) => e.message === `Starting ${UNIT}.service...`).length,
    health: () => answersHealthy(healthUrl),
  };
}

/** The runbook's "Comprehensive disk management" example, older values, comments everywhere. */
const RUNBOOK_STYLE = [
  '# /etc/stemedb/config.toml',
  '[wal]',
  'retention_days = 7 # pilot',
  'max_segments = 100',
  'segment_size_mb = 64',
  '',
  '[storage]   # compaction',
  'compaction_enabled = false # off until the first incident',
  '  compaction_interval_hours=168',
  'compaction_threshold_mb = 5000   # 5 GB',
  'data_dir = "/data/db"',
  '',
  '[backup]',
  'retention_days = 30 # monthly',
  'compression_enabled = false',
  'target = "/backups"',
  '',
].join('\n');

describe('StorageSettings Command document on a host with the StemeDB stand-in', () => {
  test('adds [storage] and [backup] to a config that has neither, and does not restart the service', async () => {
    const original = '# StemeDB\n[server]\nport = 18180\n';
    const host = await makeHost(original);
    const pid = host.systemd.mainPid(UNIT);
    const r = await host.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(host.configFile, 'utf8')).toBe(
      `${original}\n[storage]\ncompaction_enabled = true\ncompaction_interval_hours = 24\ncompaction_threshold_mb = 1000\n\n[backup]\nretention_days = 7\ncompression_enabled = true\n`,
    );
    expect(r.lastJson).toMatchObject({
      configChanged: true,
      tablesCreated: ['storage', 'backup'],
      restartRequested: false,
      restarted: false,
      pendingRestart: true,
      rolledBack: false,
      before: {
        storage: { compaction_enabled: null, compaction_interval_hours: null, compaction_threshold_mb: null },
        backup: { retention_days: null, compression_enabled: null },
      },
      after: {
        storage: { compaction_enabled: true, compaction_interval_hours: 24, compaction_threshold_mb: 1000 },
        backup: { retention_days: 7, compression_enabled: true },
      },
    });
    expect(r.stderr).toContain('the new settings apply at its next restart');
    expect(host.systemd.mainPid(UNIT)).toBe(pid);
  });

  test('replaces the five keys in place and keeps every other byte, [wal] retention_days included', async () => {
    const host = await makeHost(RUNBOOK_STYLE);
    const r = await host.run();
    expect(r.exitCode, r.stderr).toBe(0);
    const after = readFileSync(host.configFile, 'utf8');
    expect(changedLines(RUNBOOK_STYLE, after)).toEqual([7, 8, 9, 13, 14]);
    const lines = after.split('\n');
    expect([lines[7], lines[8], lines[9], lines[13], lines[14]]).toEqual([
      'compaction_enabled = true # off until the first incident',
      '  compaction_interval_hours=24',
      'compaction_threshold_mb = 1000   # 5 GB',
      'retention_days = 7 # monthly',
      'compression_enabled = true',
    ]);
    expect(lines[2]).toBe('retention_days = 7 # pilot');
    expect(r.lastJson).toMatchObject({
      tablesCreated: [],
      before: {
        storage: { compaction_enabled: false, compaction_interval_hours: 168, compaction_threshold_mb: 5000 },
        backup: { retention_days: 30, compression_enabled: false },
      },
    });
  });

  test.each([
    [
      'keys added after the last line',
      '[backup]\r\nretention_days=30\r\n\r\n[storage]\r\ncompaction_enabled = false',
      '[backup]\r\nretention_days=7\r\ncompression_enabled = true\r\n\r\n[storage]\r\ncompaction_enabled = true\r\ncompaction_interval_hours = 24\r\ncompaction_threshold_mb = 1000',
    ],
    [
      'tables appended after the last line',
      '[server]\r\nport = 1',
      '[server]\r\nport = 1\r\n\r\n[storage]\r\ncompaction_enabled = true\r\ncompaction_interval_hours = 24\r\ncompaction_threshold_mb = 1000\r\n\r\n[backup]\r\nretention_days = 7\r\ncompression_enabled = true',
    ],
  ])('keeps CRLF line ends and a missing final newline: %s', async (_what, original, expected) => {
    const host = await makeHost(original);
    const r = await host.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(host.configFile, 'utf8')).toBe(expected);
  });

  test('leaves keys of the same names in other tables ([wal], [backup.s3]) alone', async () => {
    const original =
      '[wal]\nretention_days = 3\n\n[backup.s3]\nretention_days = 90\ncompression_enabled = false\n';
    const host = await makeHost(original);
    const r = await host.run();
    expect(r.exitCode, r.stderr).toBe(0);
    const after = readFileSync(host.configFile, 'utf8');
    expect(after.startsWith(original)).toBe(true);
    expect(after.slice(original.length)).toBe(
      '\n[storage]\ncompaction_enabled = true\ncompaction_interval_hours = 24\ncompaction_threshold_mb = 1000\n\n[backup]\nretention_days = 7\ncompression_enabled = true\n',
    );
  });

  test('backs the old file up next to it, byte for byte, and keeps the file mode', async () => {
    const host = await makeHost(RUNBOOK_STYLE, { configMode: 0o600 });
    const r = await host.run();
    expect(r.exitCode, r.stderr).toBe(0);
    const backup = String(r.lastJson?.backupFile);
    expect(backup).toMatch(/\/config\.toml\.bak-\d{8}T\d{6}Z$/);
    expect(readFileSync(backup, 'utf8')).toBe(RUNBOOK_STYLE);
    expect(statSync(host.configFile).mode & 0o777).toBe(0o600);
    expect(host.files()).toEqual(['config.toml', backup.split('/').pop()]);
  });

  test('a second run with the same values writes nothing, makes no backup and restarts nothing', async () => {
    const host = await makeHost(RUNBOOK_STYLE);
    expect((await host.run({ RestartService: 'true' })).exitCode).toBe(0);
    const bytes = readFileSync(host.configFile);
    const files = host.files();
    const starts = host.starts();
    const second = await host.run({ RestartService: 'true' });
    expectSucceededWith(second, {
      wouldChange: false,
      configChanged: false,
      backupFile: null,
      restarted: false,
      pendingRestart: false,
    });
    expect(readFileSync(host.configFile).equals(bytes)).toBe(true);
    expect(host.files()).toEqual(files);
    expect(host.starts()).toBe(starts);
  });

  test('RestartService=true restarts the service, which starts with the edited file, and waits for health', async () => {
    const host = await makeHost(RUNBOOK_STYLE);
    const pid = host.systemd.mainPid(UNIT);
    const r = await host.run({ RestartService: 'true' });
    expectSucceededWith(r, { restarted: true, healthy: true, pendingRestart: false });
    expect(host.systemd.mainPid(UNIT)).not.toBe(pid);
    expect(await host.health()).toBe(true);
  });

  test('restores the old config byte for byte when the restarted service rejects the new one', async () => {
    const host = await makeHost(RUNBOOK_STYLE, { refuse: 'compaction_interval_hours = 1' });
    const original = RUNBOOK_STYLE.replace(
      '  compaction_interval_hours=168',
      'compaction_interval_hours = 168',
    );
    writeFileSync(host.configFile, original);
    const r = await host.run({ RestartService: 'true', CompactionIntervalHours: '1' });
    expect(r.exitCode).toBe(1);
    expect(readFileSync(host.configFile, 'utf8')).toBe(original);
    expect(r.lastJson).toMatchObject({
      configChanged: false,
      rolledBack: true,
      rollbackHealthy: true,
      after: { storage: { compaction_interval_hours: 168 } },
    });
    expect(r.stderr.trim().split('\n').pop()).toMatch(
      /systemctl restart stemedb-api failed with the new \[storage\] and \[backup\] settings; rolled back .* healthy again/,
    );
    expect(await host.health()).toBe(true);
  });

  test('is a dry run by default: prints the diff and changes nothing', async () => {
    const host = await makeHost(RUNBOOK_STYLE);
    const files = host.files();
    const r = await runCommandDocument(doc(), host.base, { env: host.systemd.env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('-compaction_enabled = false # off until the first incident');
    expect(r.stdout).toContain('+compaction_enabled = true # off until the first incident');
    expect(r.stdout).toContain('+retention_days = 7 # monthly');
    expect(r.lastJson).toMatchObject({
      dryRun: true,
      wouldChange: true,
      configChanged: false,
      backupFile: null,
    });
    expect(readFileSync(host.configFile, 'utf8')).toBe(RUNBOOK_STYLE);
    expect(host.files()).toEqual(files);
  });

  test('WalCleanup and StorageSettings on the same file keep each other’s tables', async () => {
    const host = await makeHost('[server]\nport = 18180\n');
    expect((await host.run()).exitCode).toBe(0);
    const wal = await runCommandDocument(
      walDoc(),
      { ...host.base, RetentionDays: '3', LogWaitSeconds: '1' },
      { env: host.systemd.env },
    );
    expect(wal.exitCode, wal.stderr).toBe(0);
    const again = await host.run();
    expect(again.lastJson).toMatchObject({ wouldChange: false });
    expect(readFileSync(host.configFile, 'utf8')).toBe(
      '[server]\nport = 18180\n\n[storage]\ncompaction_enabled = true\ncompaction_interval_hours = 24\ncompaction_threshold_mb = 1000\n\n[backup]\nretention_days = 7\ncompression_enabled = true\n\n[wal]\nretention_days = 3\nmax_segments = 100\nsegment_size_mb = 64\n',
    );
  });

  test.each([
    ['an array of tables [[backup]]', '[[backup]]\nretention_days = 30\n'],
    ['two [storage] tables', '[storage]\ncompaction_enabled = false\n[storage]\ndata_dir = "x"\n'],
    ['backup as dotted keys', 'backup.retention_days = 30\n[server]\nport = 1\n'],
    ['storage as an inline table', 'storage = { compaction_enabled = false }\n'],
    ['a key defined twice', '[backup]\nretention_days = 30\nretention_days = 40\n'],
    ['text after a value', '[storage]\ncompaction_threshold_mb = 1000 MB\n'],
    ['a multi-line string as a value', '[backup]\nretention_days = """\n30"""\n'],
  ])('refuses to edit a config with %s and changes nothing', async (_what, config) => {
    const host = await makeHost('[server]\nport = 18180\n');
    writeFileSync(host.configFile, config);
    const r = await host.run({ RestartService: 'true' });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('refusing to edit');
    expect(readFileSync(host.configFile, 'utf8')).toBe(config);
    expect(host.files()).toEqual(['config.toml']);
  });

  test('refuses a ConfigFile that is a symlink', async () => {
    const host = await makeHost(RUNBOOK_STYLE);
    const link = join(host.root, 'etc', 'stemedb', 'link.toml');
    symlinkSync(host.configFile, link);
    const r = await host.run({ ConfigFile: link });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('is a symlink');
    expect(readFileSync(host.configFile, 'utf8')).toBe(RUNBOOK_STYLE);
  });
});

const HOSTILE: Record<string, string[]> = {
  ConfigFile: [
    '',
    'etc/stemedb/config.toml',
    '/etc/stemedb/../shadow',
    '/etc/stemedb/config.toml; touch /tmp/pwned',
    '/etc/$(touch /tmp/pwned)',
    '/etc/stemedb/config.toml\n',
    '/etc/.hidden/config.toml',
  ],
  CompactionEnabled: ['', 'yes', 'TRUE', '1', 'true\n', 'true; reboot'],
  CompactionIntervalHours: ['', '0', '8761', '-1', '024', '24 ', '24\n', '1e3', '$(reboot)'],
  CompactionThresholdMb: ['0', '1000001', '1000MB', '`reboot`'],
  BackupRetentionDays: ['0', '3651', '7days', '7\n'],
  BackupCompressionEnabled: ['', 'no', 'False'],
  RestartService: ['yes', 'TRUE', 'true; reboot'],
  ServiceName: ['', '-stemedb', 'stemedb api', 'stemedb-api; reboot', '$(reboot)', 'a\nb'],
  HealthUrl: [
    'http://evil.example.com/v1/health',
    'https://localhost:18180/v1/health',
    'http://localhost@evil.example.com/',
    'http://localhost:18180/v1/health?x=$(reboot)',
    'http://localhost:18180/v1/health\n',
  ],
  HealthTimeoutSeconds: ['0', '601', '10s'],
  DryRun: ['yes', 'TRUE', 'true; reboot', ''],
};

describe('StorageSettings parameters', () => {
  const valid: Record<string, string> = {
    ConfigFile: '/etc/stemedb/config.toml',
    ...RUNBOOK,
    RestartService: 'false',
    ServiceName: 'stemedb-api',
    HealthUrl: 'http://localhost:18180/v1/health',
    HealthTimeoutSeconds: '60',
    DryRun: 'true',
  };

  test('the document declares exactly the parameters the script reads, with the runbook defaults', () => {
    expectDeclaresWhatTheScriptReads(doc(), SCRIPT, HOSTILE);
    for (const [name, value] of Object.entries(RUNBOOK))
      expect(doc().parameters?.[name]?.default, name).toBe(value);
    expect(doc().parameters?.DryRun?.default).toBe('true');
    expect(doc().parameters?.RestartService?.default).toBe('false');
  });

  hostileValueTests(doc, SCRIPT, valid, HOSTILE);

  test('the limits pass the patterns and one past them does not', () => {
    expect(
      patternRangeProblems(doc(), [
        ['CompactionIntervalHours', 1, 8760],
        ['CompactionThresholdMb', 1, 1_000_000],
        ['BackupRetentionDays', 1, 3650],
        ['HealthTimeoutSeconds', 1, 600],
      ]),
    ).toEqual([]);
  });
});
