import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import Ajv from 'ajv';
import { describe, expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CONFIG } from '../lib/config';
import type { DiskRemediation } from '../lib/disk-remediation';
import { changedLines } from './support/changed-lines';
import { type RunResult, runCommandDocument } from './support/command-document-runner';
import {
  expectDeclaresWhatTheScriptReads,
  hostileValueTests,
  patternRangeProblems,
} from './support/hostile-parameters';
import { acceptsValue, type HostileKind, valuesToRefuse } from './support/operator-parameters';
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
import type { StandinOptions } from './support/stemedb-standin';
import { synthStack } from './support/synth';

const SCRIPT = join(__dirname, '..', 'ssm-documents', 'scripts', 'wal-cleanup.sh');
const AUTOMATION = join(__dirname, '..', 'ssm-documents', 'wal-cleanup.automation.yml');
const UNIT = STANDIN_UNIT;

const doc = synthesizedBeforeAll('WalCleanup');

const cleanups = cleanupsAfterEach();

interface Host extends ScriptHost {
  readonly configFile: string;
  readonly walDir: string;
  readonly healthUrl: string;
  baseParams: Record<string, string>;
  health(): Promise<boolean>;
}

/**
 * A host: /etc/stemedb/config.toml and /data/wal under a temp root, the stand-in as the
 * `stemedb-api` unit of a fake systemd (started, healthy), three WAL segments 20 days old and two
 * 1 day old.
 */
async function makeHost(
  config: string,
  opts: { standin?: Partial<StandinOptions>; startCheckMs?: number; configMode?: number } = {},
): Promise<Host> {
  const { root, etc, configFile } = configRoot(cleanups, 'wal-cleanup-test', config, opts.configMode);
  const walDir = join(root, 'data', 'wal');
  mkdirSync(walDir, { recursive: true });
  for (let i = 0; i < 5; i++) {
    const f = join(walDir, `segment-${String(i).padStart(6, '0')}.log`);
    writeFileSync(f, 'wal');
    const t = Date.now() / 1000 - (i < 3 ? 20 : 1) * 86_400;
    utimesSync(f, t, t);
  }
  const { systemd, healthUrl } = await startedStandin(cleanups, {
    dataDir: join(root, 'data'),
    configFile,
    standin: opts.standin,
    startCheckMs: opts.startCheckMs,
  });
  const baseParams: Record<string, string> = {
    ConfigFile: configFile,
    ServiceName: UNIT,
    HealthUrl: healthUrl,
    HealthTimeoutSeconds: '15',
    LogWaitSeconds: '5',
  };
  return {
    root,
    configFile,
    walDir,
    systemd,
    healthUrl,
    baseParams,
    run: (params = {}) =>
      runCommandDocument(doc(), { ...baseParams, ...params }, { env: systemd.env, timeoutMs: 90_000 }),
    health: () => answersHealthy(healthUrl),
    files: () => readdirSync(etc).sort(),
  };
}

function journalMessages(host: Host): string[] {
  return host.systemd.journal(UNIT).map((e) => e.message);
}

/** The runbook's §2 values. */
const RUNBOOK = { RetentionDays: '7', MaxSegments: '100', SegmentSizeMb: '64' };

/**
 * Runs the runbook's values on a host whose config holds `original`: the run exits 0 and leaves
 * the file holding `expected`. Returns the run's result for the test's own checks.
 */
async function runbookEdit(original: string, expected: string): Promise<RunResult> {
  const host = await makeHost(original);
  const r = await host.run(RUNBOOK);
  expect(r.exitCode, r.stderr).toBe(0);
  expect(readFileSync(host.configFile, 'utf8')).toBe(expected);
  return r;
}

const RICH_CONFIG = [
  '# StemeDB configuration',
  '[server]',
  'port = 18180   # API port',
  '',
  '[wal]   # write-ahead log',
  'retention_days = 30 # was unlimited',
  '  max_segments=500',
  '# segment size below',
  'segment_size_mb = 128 # 128MB per segment',
  'retention_days_extra = 3',
  '',
  '[storage]',
  'compaction_enabled = true',
  'description = """',
  '[wal]',
  'retention_days = 1',
  '"""',
  '',
  '[backup]',
  'retention_days = 14',
  'max_segments = 3',
  '',
].join('\n');

describe('WalCleanup Command document (runbook §2) on a host with the StemeDB stand-in', () => {
  test('adds a [wal] table at the end of a config that has none', async () => {
    const original = '# StemeDB\n[server]\nport = 18180\n\n[backup]\nretention_days = 30\n';
    const r = await runbookEdit(
      original,
      `${original}\n[wal]\nretention_days = 7\nmax_segments = 100\nsegment_size_mb = 64\n`,
    );
    expect(r.lastJson).toMatchObject({
      configChanged: true,
      sectionCreated: true,
      before: { retention_days: null, max_segments: null, segment_size_mb: null },
      after: { retention_days: 7, max_segments: 100, segment_size_mb: 64 },
    });
  });

  test('replaces existing [wal] keys in place and keeps every other byte of the file', async () => {
    const host = await makeHost(RICH_CONFIG);
    const r = await host.run(RUNBOOK);
    expect(r.exitCode, r.stderr).toBe(0);
    const after = readFileSync(host.configFile, 'utf8');
    expect(changedLines(RICH_CONFIG, after)).toEqual([5, 6, 8]);
    const lines = after.split('\n');
    expect([lines[5], lines[6], lines[8]]).toEqual([
      'retention_days = 7 # was unlimited',
      '  max_segments=100',
      'segment_size_mb = 64 # 128MB per segment',
    ]);
    expect(r.lastJson).toMatchObject({
      sectionCreated: false,
      before: { retention_days: 30, max_segments: 500, segment_size_mb: 128 },
    });
  });

  test('adds missing keys inside the existing [wal] table, after its last key', async () => {
    await runbookEdit(
      '[wal] # WAL\nmax_segments = 100 # Cap\n\n# backups\n[backup]\nretention_days = 30\n',
      '[wal] # WAL\nmax_segments = 100 # Cap\nretention_days = 7\nsegment_size_mb = 64\n\n# backups\n[backup]\nretention_days = 30\n',
    );
  });

  test('keeps CRLF line ends and a missing final newline', async () => {
    await runbookEdit(
      '[wal]\r\nretention_days = 30\r\n\r\n[backup]\r\nretention_days = 30',
      '[wal]\r\nretention_days = 7\r\nmax_segments = 100\r\nsegment_size_mb = 64\r\n\r\n[backup]\r\nretention_days = 30',
    );
  });

  test.each([
    ['an empty file', '', '[wal]\nretention_days = 7\nmax_segments = 100\nsegment_size_mb = 64\n'],
    [
      'a byte-order mark before [wal]',
      '\uFEFF[wal]\nretention_days = 1\n',
      '\uFEFF[wal]\nretention_days = 7\nmax_segments = 100\nsegment_size_mb = 64\n',
    ],
    [
      'a quoted table name and a quoted key',
      '[ "wal" ] # WAL\n"retention_days" = 5\n',
      '[ "wal" ] # WAL\n"retention_days" = 7\nmax_segments = 100\nsegment_size_mb = 64\n',
    ],
    [
      '[wal] as the last line, without a newline',
      '[server]\nport = 1\n[wal]',
      '[server]\nport = 1\n[wal]\nretention_days = 7\nmax_segments = 100\nsegment_size_mb = 64',
    ],
    [
      'a [wal.sub] table after [wal]',
      '[wal]\n[wal.sub]\nretention_days = 1\n',
      '[wal]\nretention_days = 7\nmax_segments = 100\nsegment_size_mb = 64\n[wal.sub]\nretention_days = 1\n',
    ],
  ])('edits a config with %s correctly', async (_what, original, expected) => {
    const r = await runbookEdit(original, expected);
    expect(r.lastJson).toMatchObject({ healthy: true, rolledBack: false });
  });

  test('leaves keys with the same names in other tables untouched', async () => {
    const original =
      '[backup]\nretention_days = 30\nmax_segments = 5\n\n[wal.archive]\nretention_days = 90\n\n[storage]\nsegment_size_mb = 1\n';
    const host = await makeHost(original);
    const r = await host.run(RUNBOOK);
    expect(r.exitCode, r.stderr).toBe(0);
    const after = readFileSync(host.configFile, 'utf8');
    expect(after.startsWith(original)).toBe(true);
    expect(after.slice(original.length)).toBe(
      '\n[wal]\nretention_days = 7\nmax_segments = 100\nsegment_size_mb = 64\n',
    );
  });

  test('a second run with the same values changes nothing and does not restart the service', async () => {
    const host = await makeHost('[wal]\nretention_days = 30\n');
    const first = await host.run({ RetentionDays: '7' });
    expect(first.exitCode, first.stderr).toBe(0);
    const bytes = readFileSync(host.configFile);
    const files = host.files();
    const pid = host.systemd.mainPid(UNIT);
    const starts = journalMessages(host).filter((m) => m.startsWith('Starting')).length;

    const second = await host.run({ RetentionDays: '7' });
    expectSucceededWith(second, {
      wouldChange: false,
      configChanged: false,
      restarted: false,
      backupFile: null,
      healthy: true,
    });
    expect(second.stderr).toContain('nothing to change, not restarting');
    expect(readFileSync(host.configFile).equals(bytes)).toBe(true);
    expect(host.files()).toEqual(files);
    expect(host.systemd.mainPid(UNIT)).toBe(pid);
    expect(journalMessages(host).filter((m) => m.startsWith('Starting'))).toHaveLength(starts);
  });

  test('backs up the old file next to it, byte for byte, and keeps the file mode', async () => {
    const host = await makeHost(RICH_CONFIG, { configMode: 0o600 });
    const r = await host.run({ RetentionDays: '7' });
    expect(r.exitCode, r.stderr).toBe(0);
    const backup = r.lastJson?.backupFile;
    expect(typeof backup).toBe('string');
    expect(String(backup)).toMatch(/\/config\.toml\.bak-\d{8}T\d{6}Z$/);
    expect(readFileSync(String(backup), 'utf8')).toBe(RICH_CONFIG);
    expect(statSync(host.configFile).mode & 0o777).toBe(0o600);
    expect(host.files()).toEqual(['config.toml', String(backup).split('/').pop()]);
  });

  test('never writes the backup through a symlink planted at the backup path, before or during the run', async () => {
    const host = await makeHost(RICH_CONFIG);
    const victim = join(host.root, 'victim.txt');
    writeFileSync(victim, 'must not change');
    // Before the run: a symlink at this second's predictable backup name.
    const stamp = (ms: number) =>
      new Date(ms)
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z');
    symlinkSync(victim, `${host.configFile}.bak-${stamp(Date.now())}`);
    // During the run: an attacker racing the backup plants symlinks at the names of this second and
    // the next ones just before the copy (a `cp` first on PATH that plants, then runs the real cp).
    const bin = join(host.root, 'attacker-bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'cp'),
      [
        '#!/usr/bin/env bash',
        `if [[ " $* " == *" ${host.configFile} "* ]]; then`,
        '  now=$(date +%s)',
        '  for d in -1 0 1 2; do',
        `    n="${host.configFile}.bak-$(date -u -d "@$((now + d))" +%Y%m%dT%H%M%SZ)"`,
        `    [[ -e $n || -L $n ]] || ln -s "${victim}" "$n"`,
        '  done',
        '  for dest in "$@"; do :; done',
        `  if [[ $dest == *.bak-* && ! -L $dest ]]; then rm -f -- "$dest"; ln -s "${victim}" "$dest"; fi`,
        'fi',
        'exec /bin/cp "$@"',
        '',
      ].join('\n'),
    );
    chmodSync(join(bin, 'cp'), 0o755);
    const r = await runCommandDocument(
      doc(),
      { ...host.baseParams, RetentionDays: '7' },
      { env: { PATH: `${bin}:${host.systemd.env.PATH}` }, timeoutMs: 90_000 },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('must not change');
    const backup = String(r.lastJson?.backupFile);
    expect(lstatSync(backup).isFile()).toBe(true);
    expect(readFileSync(backup, 'utf8')).toBe(RICH_CONFIG);
    const planted = host
      .files()
      .filter((f) => f !== 'config.toml' && join(host.root, 'etc', 'stemedb', f) !== backup);
    expect(planted.length).toBeGreaterThan(0);
    for (const f of planted) {
      expect(lstatSync(join(host.root, 'etc', 'stemedb', f)).isSymbolicLink(), f).toBe(true);
    }
    expect(readFileSync(host.configFile, 'utf8')).toContain('retention_days = 7 # was unlimited');
  });

  test('restarts the service, waits for health and reports the WAL cleanup line', async () => {
    const host = await makeHost('[server]\nport = 18180\n');
    const pidBefore = host.systemd.mainPid(UNIT);
    const r = await host.run({ RetentionDays: '7' });
    expectSucceededWith(r, {
      restarted: true,
      healthy: true,
      rolledBack: false,
      warning: null,
      walCleanupLogLine: 'WAL cleanup: removed 3 segments older than 7 days',
    });
    expect(host.systemd.mainPid(UNIT)).not.toBe(pidBefore);
    expect(await host.health()).toBe(true);
    expect(readdirSync(host.walDir).sort()).toEqual(['segment-000003.log', 'segment-000004.log']);
  });

  test('reports a missing WAL cleanup line as a warning and still succeeds', async () => {
    const host = await makeHost('[server]\nport = 18180\n', { standin: { ignoreWalRetention: true } });
    const r = await host.run({ RetentionDays: '7', LogWaitSeconds: '1' });
    expectSucceededWith(r, { restarted: true, healthy: true, walCleanupLogLine: null });
    expect(String(r.lastJson?.warning)).toContain("no 'WAL cleanup:' line");
    expect(r.stderr).toContain('warning:');
  });

  test('restores the old config byte for byte when the service rejects the new one', async () => {
    const host = await makeHost(RICH_CONFIG, { standin: { maxSegmentSizeMb: 1024 } });
    const r = await host.run({ SegmentSizeMb: '4096' });
    expect(r.exitCode).toBe(1);
    expect(readFileSync(host.configFile, 'utf8')).toBe(RICH_CONFIG);
    expect(await host.health()).toBe(true);
    expect(r.lastJson).toMatchObject({
      configChanged: false,
      rolledBack: true,
      rollbackHealthy: true,
      healthy: false,
      after: { segment_size_mb: 128 },
    });
    const reason = r.stderr.trim().split('\n').pop() ?? '';
    expect(reason).toMatch(/did not become healthy .* rolled back .* healthy again with the old config/);
    expect(journalMessages(host).join('\n')).toContain('segment_size_mb = 4096');
  });

  test('rolls back as well when systemctl restart itself fails', async () => {
    const host = await makeHost('[wal]\nsegment_size_mb = 64\n', {
      standin: { maxSegmentSizeMb: 1024 },
      startCheckMs: 800,
    });
    const r = await host.run({ SegmentSizeMb: '2048' });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('systemctl restart stemedb-api failed');
    expect(readFileSync(host.configFile, 'utf8')).toBe('[wal]\nsegment_size_mb = 64\n');
    expect(r.lastJson).toMatchObject({ rolledBack: true, rollbackHealthy: true });
    expect(await host.health()).toBe(true);
  });

  test('says so when the service is still down after the rollback', async () => {
    const host = await makeHost('[wal]\nretention_days = 30\n');
    host.systemd.defineUnit(UNIT, { command: ['sh', '-c', 'echo "broken binary"; exit 1'] });
    const r = await host.run({ RetentionDays: '7', HealthTimeoutSeconds: '3' });
    expect(r.exitCode).toBe(1);
    expect(readFileSync(host.configFile, 'utf8')).toBe('[wal]\nretention_days = 30\n');
    expect(r.lastJson).toMatchObject({ rolledBack: true, rollbackHealthy: false });
    expect(r.stderr.trim().split('\n').pop()).toMatch(/rolled back .* STILL NOT healthy/);
  });

  test('DryRun prints the diff and changes nothing, restarts nothing', async () => {
    const host = await makeHost(RICH_CONFIG);
    const files = host.files();
    const pid = host.systemd.mainPid(UNIT);
    const journalLength = journalMessages(host).length;
    const r = await host.run({ RetentionDays: '7', DryRun: 'true' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('-retention_days = 30 # was unlimited');
    expect(r.stdout).toContain('+retention_days = 7 # was unlimited');
    expect(r.lastJson).toMatchObject({
      dryRun: true,
      wouldChange: true,
      configChanged: false,
      restarted: false,
      backupFile: null,
    });
    expect(readFileSync(host.configFile, 'utf8')).toBe(RICH_CONFIG);
    expect(host.files()).toEqual(files);
    expect(host.systemd.mainPid(UNIT)).toBe(pid);
    expect(journalMessages(host)).toHaveLength(journalLength);
  });

  test.each([
    ['an array of tables [[wal]]', '[[wal]]\nretention_days = 30\n'],
    ['two [wal] tables', '[wal]\nretention_days = 30\n[wal]\nmax_segments = 1\n'],
    ['wal as dotted keys', 'wal.retention_days = 30\n[server]\nport = 1\n'],
    ['wal as an inline table', 'wal = { retention_days = 30 }\n'],
    ['a key defined twice', '[wal]\nretention_days = 30\nretention_days = 40\n'],
    ['text after a value', '[wal]\nretention_days = 30 days\n'],
    ['a multi-line array as a value', '[wal]\nretention_days = [\n  30,\n]\n'],
    ['a multi-line string as a value', '[wal]\nretention_days = """\n30"""\n'],
  ])('refuses to edit a config with %s and changes nothing', async (_what, config) => {
    const host = await makeHost('[server]\nport = 18180\n');
    writeFileSync(host.configFile, config);
    const pid = host.systemd.mainPid(UNIT);
    const r = await host.run({ RetentionDays: '7' });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('refusing to edit');
    expect(readFileSync(host.configFile, 'utf8')).toBe(config);
    expect(host.files()).toEqual(['config.toml']);
    expect(host.systemd.mainPid(UNIT)).toBe(pid);
  });

  test('refuses a ConfigFile that is a symlink', async () => {
    const host = await makeHost('[wal]\nretention_days = 30\n');
    const link = join(host.root, 'etc', 'stemedb', 'link.toml');
    symlinkSync(host.configFile, link);
    const r = await host.run({ ConfigFile: link });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('is a symlink');
    expect(readFileSync(host.configFile, 'utf8')).toBe('[wal]\nretention_days = 30\n');
  });
});

// Hostile values: each must fail the document's parameter check (so SendCommand rejects it and
// no shell runs), and the script's own check when it is run by itself.
const HOSTILE: Record<string, string[]> = {
  ConfigFile: [
    '',
    'etc/stemedb/config.toml',
    '/etc/stemedb/../shadow',
    '/../etc/passwd',
    '/etc/stemedb/config.toml; touch /tmp/pwned',
    '/etc/$(touch /tmp/pwned)',
    '/etc/stemedb/config.toml\n',
    '/etc/stemedb/my config.toml',
    '/etc/.hidden/config.toml',
  ],
  RetentionDays: ['', '0', '3651', '-1', '07', '7 ', '7\n', '1e3', '7; reboot', '$(reboot)'],
  MaxSegments: ['0', '1000001', '100 ', 'abc', '`reboot`'],
  SegmentSizeMb: ['0', '4097', '64MB', '64\n'],
  ServiceName: ['', '-stemedb', 'stemedb api', 'stemedb-api; reboot', '$(reboot)', '../x', 'a\nb'],
  HealthUrl: [
    'http://evil.example.com/v1/health',
    'https://localhost:18180/v1/health',
    'http://localhost@evil.example.com/',
    'http://localhost:18180/v1/health?x=$(reboot)',
    'http://localhost:123456/v1/health',
    'http://localhost:18180/v1/health\n',
    'file:///etc/passwd',
    'http://localhost:18180 -o /etc/passwd/',
  ],
  HealthTimeoutSeconds: ['0', '601', '10s', ''],
  LogWaitSeconds: ['-1', '601', '1 '],
  DryRun: ['yes', 'TRUE', 'true; reboot', ''],
};

describe('WalCleanup parameters', () => {
  const valid: Record<string, string> = {
    ConfigFile: '/etc/stemedb/config.toml',
    ...RUNBOOK,
    ServiceName: 'stemedb-api',
    HealthUrl: 'http://localhost:18180/v1/health',
    HealthTimeoutSeconds: '60',
    LogWaitSeconds: '30',
    DryRun: 'true',
  };

  test('the document declares exactly the parameters the script reads', () => {
    expectDeclaresWhatTheScriptReads(doc(), SCRIPT, HOSTILE);
  });

  hostileValueTests(doc, SCRIPT, valid, HOSTILE);

  test('the limits of lib/config.ts pass the patterns and one past them does not', () => {
    const params = doc().parameters ?? {};
    const ok = (name: string, value: string): boolean =>
      new RegExp(params[name]?.allowedPattern ?? '^$').test(value);
    expect(
      patternRangeProblems(doc(), [
        ['RetentionDays', 1, 3650],
        ['MaxSegments', 1, 1_000_000],
        ['SegmentSizeMb', 1, 4096],
        ['HealthTimeoutSeconds', 1, 600],
        ['LogWaitSeconds', 0, 600],
      ]),
    ).toEqual([]);
    expect(ok('ServiceName', DEFAULT_CONFIG.serviceName)).toBe(true);
    expect(ok('HealthUrl', DEFAULT_CONFIG.healthUrl)).toBe(true);
  });
});

describe('StemeDB-WalCleanup Automation document', () => {
  const text = readFileSync(AUTOMATION, 'utf8');
  const placeholders: Record<string, string> = {
    Prefix: 'StemeDB',
    WalRetentionDays: String(DEFAULT_CONFIG.wal.retentionDays),
    WalMaxSegments: String(DEFAULT_CONFIG.wal.maxSegments),
    WalSegmentSizeMb: String(DEFAULT_CONFIG.wal.segmentSizeMb),
    ServiceName: DEFAULT_CONFIG.serviceName,
    HealthUrl: DEFAULT_CONFIG.healthUrl,
    ConfigFile: DEFAULT_CONFIG.configFile,
    AutomationRoleArn: 'arn:aws:iam::123456789012:role/StemeDB-Automation',
    TopicArn: 'arn:aws:sns:eu-west-1:123456789012:StemeDB-notifications',
  };
  const substituted = text.replace(/\$\{([A-Za-z]+)\}/g, (m, name: string) => placeholders[name] ?? m);
  type Step = {
    name: string;
    action: string;
    onFailure?: string;
    nextStep?: string;
    isEnd?: boolean;
    inputs: Record<string, unknown>;
  };
  type Automation = {
    parameters: Record<string, { default?: string; allowedPattern?: string; allowedValues?: string[] }>;
    mainSteps: Step[];
  };
  const automation = parseYaml(substituted) as Automation;
  const step = (name: string): Step => {
    const s = automation.mainSteps.find((x) => x.name === name);
    if (s === undefined) throw new Error(`no step ${name}`);
    return s;
  };

  test('uses only the placeholders the CDK construct substitutes', () => {
    const used = new Set([...text.matchAll(/\$\{([A-Za-z]+)\}/g)].map((m) => m[1]));
    expect(used).toEqual(new Set(Object.keys(placeholders)));
  });

  test('is valid against the SSM Automation schema', () => {
    const schema = JSON.parse(
      readFileSync(
        createRequire(__filename).resolve('aws-ssm-document-language-service/dist/schema.json'),
        'utf8',
      ),
    ) as object;
    const ajv = new Ajv({ strict: false, allErrors: true, unicodeRegExp: false });
    const validate = ajv.compile(schema);
    expect(validate(automation), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  /** What the host script edits, restarts and calls as root: only this deployment's values. */
  const CONFIGURED: Record<string, string> = {
    ConfigFile: DEFAULT_CONFIG.configFile,
    ServiceName: DEFAULT_CONFIG.serviceName,
    HealthUrl: DEFAULT_CONFIG.healthUrl,
  };

  test('passes every Command document parameter through: the same patterns, or only the configured value', () => {
    const run = step('SetWalRetention');
    expect(run.action).toBe('aws:runCommand');
    expect(run.inputs.DocumentName).toBe('StemeDB-Host-WalCleanup');
    const passed = run.inputs.Parameters as Record<string, string[]>;
    const commandParams = doc().parameters ?? {};
    expect(Object.keys(passed).sort()).toEqual(Object.keys(commandParams).sort());
    for (const [name, value] of Object.entries(passed)) {
      expect(value).toEqual([`{{ ${name} }}`]);
      const configured = CONFIGURED[name];
      if (configured !== undefined) {
        expect(automation.parameters[name]?.allowedValues, name).toEqual([configured]);
        expect(automation.parameters[name]?.allowedPattern, name).toBeUndefined();
        expect(new RegExp(commandParams[name]?.allowedPattern ?? '^$').test(configured), name).toBe(true);
        continue;
      }
      expect(automation.parameters[name]?.allowedPattern).toBe(commandParams[name]?.allowedPattern);
      expect(automation.parameters[name]?.allowedValues).toEqual(commandParams[name]?.allowedValues);
    }
  });

  test.each(Object.keys(CONFIGURED))(
    '%s takes only the configured value, not another file, unit or URL',
    (name) => {
      const spec = automation.parameters[name];
      const configured = CONFIGURED[name] ?? '';
      const kind = { ConfigFile: 'path', ServiceName: 'unit', HealthUrl: 'url' }[name] as HostileKind;
      expect(acceptsValue(spec, configured)).toBe(true);
      expect(valuesToRefuse(kind, [configured]).filter((v) => acceptsValue(spec, v))).toEqual([]);
    },
  );

  test('the synthesized document takes the configFile, serviceName and healthUrl of the configuration', () => {
    const config = {
      configFile: '/opt/stemedb/conf.d/stemedb.toml',
      serviceName: 'stemedb@green.service',
      healthUrl: 'http://127.0.0.1:28180/healthz',
    };
    const { stack } = synthStack(config);
    const remediation = stack.node.findChild('Remediation') as DiskRemediation;
    const params = remediation.automationDocuments.WalCleanup.content.parameters ?? {};
    expect(params.ConfigFile).toMatchObject({
      default: config.configFile,
      allowedValues: [config.configFile],
    });
    expect(params.ServiceName).toMatchObject({
      default: config.serviceName,
      allowedValues: [config.serviceName],
    });
    expect(params.HealthUrl).toMatchObject({ default: config.healthUrl, allowedValues: [config.healthUrl] });
  }, 120_000);

  test('its defaults, once substituted, pass its own patterns', () => {
    for (const [name, p] of Object.entries(automation.parameters)) {
      if (p.default === undefined) continue;
      if (p.allowedPattern !== undefined)
        expect(new RegExp(p.allowedPattern).test(p.default), name).toBe(true);
      if (p.allowedValues !== undefined) expect(p.allowedValues, name).toContain(p.default);
    }
    expect(automation.parameters.InstanceId?.default).toBeUndefined();
    expect(automation.parameters.ConfigFile?.default).toBe(DEFAULT_CONFIG.configFile);
    expect(DEFAULT_CONFIG.configFile).toBe('/etc/stemedb/config.toml');
  });

  test('every {{ }} reference names a parameter, a step output or an automation variable', () => {
    const stepNames = new Set(automation.mainSteps.map((s) => s.name));
    for (const [, ref] of substituted.matchAll(/\{\{\s*([^}\s]+)\s*\}\}/g)) {
      const name = ref ?? '';
      const [stepName, output] = name.split('.');
      const known =
        name in automation.parameters ||
        name === 'automation:EXECUTION_ID' ||
        (stepName !== undefined && stepNames.has(stepName) && output === 'Output');
      expect(known, name).toBe(true);
    }
  });

  test('notifies the topic on success and on failure, and the failure path ends the run', () => {
    const run = step('SetWalRetention');
    expect(run.onFailure).toBe('step:NotifyFailure');
    expect(run.nextStep).toBe('NotifySuccess');
    for (const name of ['NotifySuccess', 'NotifyFailure']) {
      const s = step(name);
      expect(s.action).toBe('aws:executeAwsApi');
      expect(s.inputs).toMatchObject({ Service: 'sns', Api: 'Publish', TopicArn: placeholders.TopicArn });
      expect(s.isEnd).toBe(true);
    }
    expect(String(step('NotifySuccess').inputs.Message)).toContain('{{ SetWalRetention.Output }}');
  });
});
