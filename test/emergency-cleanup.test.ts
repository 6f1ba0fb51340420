/**
 * EmergencyCleanup (runbook §1): the synthesized `<Prefix>-Host-EmergencyCleanup` Command document
 * run like the SSM agent runs it, on a real ext4 filesystem on a loop device filled to 100%, with a
 * recording `journalctl` and the fake systemd first on PATH; its parameters against hostile
 * values; and the `<Prefix>-EmergencyCleanup` Automation walked through its escalation and
 * failure paths with its embedded Python run on stub AWS answers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AutomationDocumentContent } from '../lib/automation-document';
import type { CommandDocumentContent } from '../lib/command-document';
import { executeScriptStep } from './support/automation-python';
import { type StepResult, simulateAutomation } from './support/automation-validator';
import { type RunResult, runCommandDocument } from './support/command-document-runner';
import { createFakeSystemd, type FakeSystemd } from './support/fake-systemd';
import { checksumTree, LoopDeviceLab } from './support/loop-device';
import {
  TEST_INSTANCE as INSTANCE,
  isAValidAutomationDocument,
  loadSectionAutomation,
  notificationOf,
} from './support/section-automation';
import {
  FILLABLE_EXT4,
  rejectsHostileValuesBeforeAnyShellRuns,
  sectionOnLoopDisk,
  shellInjections,
} from './support/section-bed';
import { cleanupsAfterEach } from './support/service-bed';
import { freePort, standinCommand } from './support/stemedb-standin';

const MiB = 1024 * 1024;
const DAY = 86_400;

let doc: CommandDocumentContent;
let mount: string;
let outside: string;
let recorder: string;
let systemd: FakeSystemd;
const lab = new LoopDeviceLab('emergency-cleanup-');

/** `journalctl` stand-in: records its arguments, answers like journald's vacuum. */
const JOURNALCTL = `#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$(dirname "$0")/journalctl.args"
echo "Deleted archived journal /var/log/journal/x/system@1.journal (8.0M)."
echo "Vacuuming done, freed 16.0M of archived journals from /var/log/journal/x."
`;

beforeAll(() => {
  ({ doc, mount } = sectionOnLoopDisk(lab, 'EmergencyCleanup', FILLABLE_EXT4));
  outside = mkdtempSync(join(tmpdir(), 'emergency-outside-'));
  recorder = mkdtempSync(join(tmpdir(), 'emergency-journalctl-'));
  writeFileSync(join(recorder, 'journalctl'), JOURNALCTL);
  chmodSync(join(recorder, 'journalctl'), 0o755);
  systemd = createFakeSystemd();
});

afterAll(async () => {
  await systemd.cleanup();
  lab.cleanup();
  rmSync(outside, { recursive: true, force: true });
  rmSync(recorder, { recursive: true, force: true });
});

const cleanups = cleanupsAfterEach();
afterEach(() => rmSync(join(recorder, 'journalctl.args'), { force: true }));

/** Sets the mtime (and atime) of a path, `daysAgo` days back, without following a symlink. */
function age(path: string, daysAgo: number): void {
  const when = `@${Math.floor(Date.now() / 1000 - daysAgo * DAY)}`;
  execFileSync('touch', ['-h', '-d', when, path]);
}

function file(path: string, bytes: number, daysAgo: number): void {
  writeFileSync(path, Buffer.alloc(bytes, 7));
  age(path, daysAgo);
}

interface Tree {
  readonly backups: string;
  readonly cores: string;
}

/** A fresh backups and core-dump tree on the data disk; removed (with the fill) after the test. */
function makeTree(): Tree {
  const backups = join(mount, 'backups');
  const cores = join(mount, 'coredump');
  mkdirSync(backups);
  mkdirSync(cores);
  cleanups.push(() => {
    rmSync(backups, { recursive: true, force: true });
    rmSync(cores, { recursive: true, force: true });
  });
  return { backups, cores };
}

/** Fills the disk to 100%; the fill files go after the test. */
function fillDisk(): void {
  const { files, usedPercent } = lab.fill(mount);
  cleanups.push(() => {
    for (const f of files) rmSync(f, { force: true });
  });
  expect(usedPercent).toBe(100);
}

const PATH_ENV = (): { PATH: string } => ({ PATH: `${recorder}:${systemd.env.PATH}` });

function run(params: Record<string, string>): Promise<RunResult> {
  return runCommandDocument(
    doc,
    { MountPoint: mount, StartService: 'false', CoreDumpDir: join(mount, 'coredump'), ...params },
    { env: PATH_ENV() },
  );
}

interface StepJson {
  status: string;
  deleted: number;
  bytesFreed: number;
  failed: number;
  deletedNames: string[];
  kept: { name: string; why: string }[];
}

function step(r: RunResult, name: 'backups' | 'coreDumps'): StepJson {
  return ((r.lastJson?.steps ?? {}) as Record<string, StepJson>)[name] as StepJson;
}

function journalArgs(): string[] {
  const f = join(recorder, 'journalctl.args');
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n') : [];
}

describe('Host-EmergencyCleanup on a full disk', () => {
  it('deletes backups older than the retention, keeps newer ones, and frees space on a 100% full disk', async () => {
    const { backups } = makeTree();
    file(join(backups, 'stemedb-backup-2025-01-01.tar.gz'), 4 * MiB, 45);
    mkdirSync(join(backups, 'stemedb-backup-2025-01-05'));
    file(join(backups, 'stemedb-backup-2025-01-05', 'data.kv'), 3 * MiB, 40);
    age(join(backups, 'stemedb-backup-2025-01-05'), 40);
    file(join(backups, 'stemedb-backup-recent.tar.gz'), MiB, 5);
    file(join(backups, 'unrelated-old.tar.gz'), MiB, 90);
    fillDisk();

    const r = await run({ BackupDir: backups });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readdirSync(backups).sort()).toEqual(['stemedb-backup-recent.tar.gz', 'unrelated-old.tar.gz']);
    const b = step(r, 'backups');
    expect(b.deletedNames.sort()).toEqual(['stemedb-backup-2025-01-01.tar.gz', 'stemedb-backup-2025-01-05']);
    expect(b.bytesFreed).toBeGreaterThanOrEqual(7 * MiB);
    expect(r.lastJson).toMatchObject({ status: 'cleaned', dryRun: false });
    const before = r.lastJson?.before as { availBytes: number; usedPercent: number };
    const after = r.lastJson?.after as { availBytes: number };
    expect(before.usedPercent).toBe(100);
    expect(after.availBytes - before.availBytes).toBeGreaterThanOrEqual(7 * MiB);
    expect(r.lastJson?.availBytesFreed).toBe(after.availBytes - before.availBytes);
  });

  it('keeps the newest backup even when every backup is older than the retention', async () => {
    const { backups } = makeTree();
    file(join(backups, 'stemedb-backup-a.tar.gz'), MiB, 60);
    file(join(backups, 'stemedb-backup-b.tar.gz'), MiB, 50);
    file(join(backups, 'stemedb-backup-c.tar.gz'), MiB, 40);
    fillDisk();

    const r = await run({ BackupDir: backups, KeepNewestBackups: '1' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readdirSync(backups)).toEqual(['stemedb-backup-c.tar.gz']);
    expect(step(r, 'backups').kept).toEqual([
      { name: 'stemedb-backup-c.tar.gz', why: expect.stringContaining('newest') },
    ]);
  });

  it('keeps the KeepNewestBackups newest backups whatever their age', async () => {
    const { backups } = makeTree();
    for (const [name, days] of [
      ['a', 60],
      ['b', 50],
      ['c', 40],
    ] as const)
      file(join(backups, `stemedb-backup-${name}`), MiB, days);
    const r = await run({ BackupDir: backups, KeepNewestBackups: '2', BackupRetentionDays: '1' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readdirSync(backups).sort()).toEqual(['stemedb-backup-b', 'stemedb-backup-c']);
  });

  it('does not follow a symlink in BackupDir, and leaves its target untouched', async () => {
    const { backups } = makeTree();
    const target = join(outside, 'precious');
    mkdirSync(target, { recursive: true });
    file(join(target, 'stemedb-backup-keep-me'), 1024, 100);
    file(join(outside, 'stemedb-backup-file'), 1024, 100);
    cleanups.push(() => rmSync(join(outside, 'stemedb-backup-file'), { force: true }));
    symlinkSync(target, join(backups, 'stemedb-backup-linkdir'));
    symlinkSync(join(outside, 'stemedb-backup-file'), join(backups, 'stemedb-backup-linkfile'));
    age(join(backups, 'stemedb-backup-linkdir'), 100);
    age(join(backups, 'stemedb-backup-linkfile'), 100);
    file(join(backups, 'stemedb-backup-real'), 1024, 1);
    const sums = checksumTree(outside);
    fillDisk();

    const r = await run({ BackupDir: backups });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(checksumTree(outside)).toEqual(sums);
    expect(lstatSync(join(backups, 'stemedb-backup-linkdir')).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(backups, 'stemedb-backup-linkfile')).isSymbolicLink()).toBe(true);
    expect(step(r, 'backups').deleted).toBe(0);
    expect(step(r, 'backups').kept.map((k) => k.why)).toContain(
      'a symlink (never followed, never counted as a backup)',
    );
    rmSync(target, { recursive: true, force: true });
  });

  it('refuses a BackupDir that is a symlink, or reached through one, and deletes nothing there', async () => {
    const { backups } = makeTree();
    file(join(backups, 'stemedb-backup-a'), 1024, 60);
    file(join(backups, 'stemedb-backup-b'), 1024, 50);
    const link = join(outside, 'backups-link');
    symlinkSync(backups, link);
    cleanups.push(() => rmSync(link, { force: true }));

    const direct = await run({ BackupDir: link });
    expect(direct.exitCode).toBe(1);
    expect(step(direct, 'backups').status).toMatch(/^refused: .* is a symlink/);
    expect(direct.stderr.trim().split('\n').pop()).toMatch(/backups: refused/);
    const inner = join(outside, 'linkparent');
    symlinkSync(mount, inner);
    cleanups.push(() => rmSync(inner, { force: true }));
    const r = await run({ BackupDir: join(inner, 'backups') });
    expect(r.exitCode).toBe(1);
    expect(step(r, 'backups').status).toMatch(/resolves to .* \(a symlink in its path\)/);
    expect(readdirSync(backups).sort()).toEqual(['stemedb-backup-a', 'stemedb-backup-b']);
  });

  it('never crosses into another filesystem mounted in BackupDir or inside an old backup', async () => {
    const { backups } = makeTree();
    const mounted = join(backups, 'stemedb-backup-mounted');
    const withMount = join(backups, 'stemedb-backup-old');
    mkdirSync(join(withMount, 'inner'), { recursive: true });
    file(join(withMount, 'local.kv'), MiB, 90);
    const other = lab.createDisk({ sizeMiB: 16, fs: 'ext4', mount: false });
    lab.mount(other, mounted);
    file(join(mounted, 'data.kv'), 4096, 90);
    age(mounted, 90);
    const third = lab.createDisk({ sizeMiB: 16, fs: 'ext4', mount: false });
    lab.mount(third, join(withMount, 'inner'));
    file(join(withMount, 'inner', 'remote.kv'), 4096, 90);
    age(withMount, 80);
    file(join(backups, 'stemedb-backup-newest'), 1024, 31);
    const sumsMounted = checksumTree(mounted);
    const sumsInner = checksumTree(join(withMount, 'inner'));

    const r = await run({ BackupDir: backups });
    expect(checksumTree(mounted)).toEqual(sumsMounted);
    expect(checksumTree(join(withMount, 'inner'))).toEqual(sumsInner);
    expect(step(r, 'backups').kept).toContainEqual({
      name: 'stemedb-backup-mounted',
      why: 'on another filesystem (a mount point); never crossed',
    });
    // The old backup's own files go; the directory stays because of the mount inside it.
    expect(existsSync(join(withMount, 'local.kv'))).toBe(false);
    expect(step(r, 'backups').failed).toBe(1);
    expect(r.exitCode).toBe(1);
    execFileSync('umount', [join(withMount, 'inner')]);
    execFileSync('umount', [mounted]);
  });

  it('deletes core dumps older than a day and keeps newer ones, symlinks and other names', async () => {
    const { cores } = makeTree();
    file(join(cores, 'core.stemedb.1000.a.zst'), 2 * MiB, 3);
    file(join(cores, 'core.stemedb.1000.b.zst'), MiB, 1.5);
    file(join(cores, 'core.stemedb.1000.c.zst'), MiB, 0.5);
    file(join(cores, 'notes.txt'), 1024, 30);
    file(join(outside, 'core.target'), 1024, 30);
    cleanups.push(() => rmSync(join(outside, 'core.target'), { force: true }));
    symlinkSync(join(outside, 'core.target'), join(cores, 'core.link'));
    age(join(cores, 'core.link'), 30);
    fillDisk();

    const r = await run({ BackupDir: join(mount, 'backups') });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readdirSync(cores).sort()).toEqual(['core.link', 'core.stemedb.1000.c.zst', 'notes.txt']);
    expect(existsSync(join(outside, 'core.target'))).toBe(true);
    expect(step(r, 'coreDumps').bytesFreed).toBeGreaterThanOrEqual(3 * MiB);
  });

  it('vacuums the journal with --vacuum-time=<JournalVacuumDays>d and reports what journald freed', async () => {
    makeTree();
    const r = await run({ BackupDir: join(mount, 'backups'), JournalVacuumDays: '3' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(journalArgs()).toEqual(['--vacuum-time=3d']);
    expect(((r.lastJson?.steps ?? {}) as Record<string, unknown>).journal).toEqual({
      command: 'journalctl --vacuum-time=3d',
      status: 'ok',
      bytesFreed: 16 * MiB,
    });
  });

  it('deletes nothing and vacuums nothing in a dry run, listing what it would delete', async () => {
    const { backups, cores } = makeTree();
    file(join(backups, 'stemedb-backup-a'), MiB, 60);
    file(join(backups, 'stemedb-backup-b'), MiB, 50);
    file(join(cores, 'core.x'), MiB, 5);
    fillDisk();
    const tree = (): Record<string, string> => checksumTree(mount);
    const names = (): string[] =>
      execFileSync('find', [mount, '-printf', '%P %y %T@\n'], { encoding: 'utf8' }).split('\n').sort();
    const sums = tree();
    const listing = names();

    const r = await run({ BackupDir: backups, DryRun: 'true' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(tree()).toEqual(sums);
    expect(names()).toEqual(listing);
    expect(journalArgs()).toEqual([]);
    expect(r.lastJson).toMatchObject({ status: 'dry-run', dryRun: true });
    expect(step(r, 'backups').deletedNames).toEqual(['stemedb-backup-a']);
    expect(step(r, 'coreDumps').deletedNames).toEqual(['core.x']);
    expect(r.stderr).toContain(`would delete ${join(backups, 'stemedb-backup-a')}`);
  });
});

describe('Host-EmergencyCleanup starts the service', () => {
  it('starts the stopped service after the cleanup and waits until it is healthy', async () => {
    makeTree();
    const port = await freePort();
    const node = createFakeSystemd({ 'stemedb-api': standinCommand({ port, dataDir: mount }) });
    cleanups.push(() => node.cleanup());
    const r = await runCommandDocument(
      doc,
      {
        MountPoint: mount,
        BackupDir: join(mount, 'backups'),
        CoreDumpDir: join(mount, 'coredump'),
        HealthUrl: `http://127.0.0.1:${port}/v1/health`,
      },
      { env: { PATH: `${recorder}:${node.env.PATH}` } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.lastJson?.service).toMatchObject({ stateBefore: 'inactive', action: 'started', healthy: true });
    expect((await node.systemctl('is-active', 'stemedb-api')).stdout.trim()).toBe('active');
  });

  it('does not start the service in a dry run', async () => {
    makeTree();
    const node = createFakeSystemd({ 'stemedb-api': standinCommand({ port: 1, dataDir: mount }) });
    cleanups.push(() => node.cleanup());
    const r = await runCommandDocument(
      doc,
      { MountPoint: mount, BackupDir: join(mount, 'backups'), DryRun: 'true' },
      { env: { PATH: `${recorder}:${node.env.PATH}` } },
    );
    expect(r.lastJson?.service).toMatchObject({ action: 'would-start', healthy: null });
    expect(node.mainPid('stemedb-api')).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// Parameters

const marker = join(tmpdir(), `pwned-emergency-cleanup-${process.pid}`);
const INJECTIONS = shellInjections(marker);
const PATHS = [
  '/backups/..',
  '/../etc',
  '/backups/../etc',
  '/a/./b',
  'backups',
  '/back ups',
  '/',
  '/backups/',
  '/.x',
];
const HOSTILE: Record<string, readonly string[]> = {
  MountPoint: [...INJECTIONS, ...PATHS, ''],
  BackupDir: [...INJECTIONS, ...PATHS, ''],
  CoreDumpDir: [...INJECTIONS, ...PATHS, ''],
  BackupRetentionDays: [...INJECTIONS, '0', '-1', '1.5', '10000', '7 ', '7\n', ''],
  KeepNewestBackups: [...INJECTIONS, '0', '-1', '1000', '01', ''],
  JournalVacuumDays: [...INJECTIONS, '0', '7d', '1e3', ''],
  CoreDumpAgeDays: [...INJECTIONS, '0', '1 day', ''],
  ServiceName: [...INJECTIONS, '-stemedb', 'stemedb api', 'a/b', ''],
  StartService: [...INJECTIONS, 'yes', 'TRUE', 'true\n'],
  HealthUrl: [
    ...INJECTIONS,
    'http://evil.example/v1/health',
    'file:///etc/passwd',
    'http://localhost:1/../x?y',
    '',
  ],
  HealthTimeoutSeconds: [...INJECTIONS, '0', '601', '60s', ''],
  DryRun: [...INJECTIONS, 'yes', '1', 'false ', ''],
};

describe('Host-EmergencyCleanup parameters', () => {
  rejectsHostileValuesBeforeAnyShellRuns(
    () => doc,
    marker,
    HOSTILE,
    () => PATH_ENV(),
  );

  it.each(['BackupDir', 'CoreDumpDir', 'BackupRetentionDays', 'KeepNewestBackups', 'DryRun'])(
    'the script refuses a bad %s again when run by hand',
    (name) => {
      const script = join(__dirname, '..', 'ssm-documents', 'scripts', 'emergency-cleanup.sh');
      const bad = name.endsWith('Dir') ? '/x/../etc' : name === 'DryRun' ? 'maybe' : '0';
      const r = execFileSyncStatus('bash', [script], { [`SSM_${name}`]: bad, SSM_MountPoint: mount });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^emergency-cleanup: ${name} is invalid`));
    },
  );
});

function execFileSyncStatus(cmd: string, args: string[], env: Record<string, string>) {
  return spawnSync(cmd, args, { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
}

// ---------------------------------------------------------------------------------------------
// The Automation

const automation = (): AutomationDocumentContent => loadSectionAutomation('EmergencyCleanup');

const cleanupJson = (usedAfter: number) =>
  JSON.stringify({
    status: 'cleaned',
    bytesFreed: 7340032,
    availBytesFreed: 7340032,
    before: { usedPercent: 100 },
    after: { usedPercent: usedAfter },
    steps: {
      backups: { dir: '/backups', status: 'ok', deleted: 2, bytesFreed: 7340032, keptCount: 1 },
      journal: { command: 'journalctl --vacuum-time=7d', status: 'ok', bytesFreed: 0 },
      coreDumps: { dir: '/var/lib/systemd/coredump', status: 'ok', deleted: 0, bytesFreed: 0 },
    },
    service: { name: 'stemedb-api', action: 'started', healthy: true },
    problems: [],
  });

interface Scenario {
  /** used % in the disk report after (undefined: no report) */
  readonly reportUsed?: number;
  /** used % in the host cleanup's own df after */
  readonly cleanupUsed?: number;
  readonly failing?: readonly string[];
  readonly params?: Record<string, string>;
}

/** Walks the document; host commands answer from the scenario, Summarize runs its real Python. */
function walk(s: Scenario) {
  const doc = automation();
  const commandIds: Record<string, string> = {
    DiskReportBefore: 'c-before',
    HostCleanup: 'c-clean',
    Validate: 'c-validate',
    DiskReportAfter: 'c-after',
  };
  const invocations: unknown[] = [
    { Status: 'Success', ResponseCode: 0, StandardOutputContent: '{"usedPercent": 99.5}' },
    s.cleanupUsed === undefined
      ? { Status: 'Failed', ResponseCode: 1, StandardOutputContent: '', StandardErrorContent: 'boom' }
      : { Status: 'Success', ResponseCode: 0, StandardOutputContent: `df...\n${cleanupJson(s.cleanupUsed)}` },
  ];
  if (s.params?.DryRun !== 'true')
    invocations.push({
      Status: 'Failed',
      ResponseCode: 1,
      StandardOutputContent: '{"healthy": false, "failed": ["disk"]}',
    });
  invocations.push(
    s.reportUsed === undefined
      ? { error: 'InvocationDoesNotExist' }
      : { Status: 'Success', ResponseCode: 0, StandardOutputContent: `{"usedPercent": ${s.reportUsed}}` },
  );
  const ran = new Set<string>();
  return simulateAutomation(doc, { InstanceId: INSTANCE, ...s.params }, (name, inputs): StepResult => {
    ran.add(name);
    if (s.failing?.includes(name)) return { status: 'Failed' };
    if (name === 'Summarize') {
      const stepExecutions = [...ran]
        .filter((n) => commandIds[n] !== undefined)
        .map((n) => ({ StepName: n, StepStatus: 'Success', Outputs: { CommandId: [commandIds[n]] } }));
      stepExecutions.push({
        StepName: 'ArchiveWal',
        StepStatus: s.failing?.includes('ArchiveWal') ? 'Failed' : 'Success',
        Outputs: { CommandId: [''] },
      });
      return executeScriptStep(doc, name, inputs, {
        get_automation_execution: [{ AutomationExecution: { StepExecutions: stepExecutions } }],
        get_command_invocation: invocations,
        list_commands: [{ Commands: [] }],
      });
    }
    if (name === 'ExpandVolume')
      return { status: 'Success', outputs: { Status: 'Success', ExecutionId: 'e-1' } };
    if (name.startsWith('Fail')) return { status: 'Failed' };
    return { status: 'Success' };
  });
}

describe('StemeDB-EmergencyCleanup Automation', () => {
  isAValidAutomationDocument(() => automation());

  it('archives WAL through ArchiveWal with WalRetentionDays, never through the host script', () => {
    const sim = walk({ reportUsed: 70, cleanupUsed: 70 });
    expect(sim.inputs.ArchiveWal).toMatchObject({
      DocumentName: 'StemeDB-ArchiveWal',
      RuntimeParameters: { InstanceId: [INSTANCE], OlderThanDays: ['7'], DryRun: ['false'] },
    });
    expect(JSON.stringify(sim.inputs.HostCleanup)).not.toMatch(/Wal/);
  });

  it('cleans, validates and notifies without escalating when the disk is at or below 95% used', () => {
    const sim = walk({ reportUsed: 95, cleanupUsed: 94 });
    expect(sim.path).toEqual([
      'DiskReportBefore',
      'ArchiveWal',
      'HostCleanup',
      'BranchOnDryRun',
      'Validate',
      'DiskReportAfter',
      'Summarize',
      'BranchOnEscalation',
      'Notify',
    ]);
    expect(sim.status).toBe('Success');
    expect(notificationOf(sim, 'Notify').Message).toContain('Old backups in /backups: ok, 2 deleted');
  });

  it('escalates to ExpandVolume when still above 95% used after the cleanup', () => {
    const sim = walk({ reportUsed: 96.5, cleanupUsed: 96 });
    expect(sim.path.slice(-3)).toEqual(['BranchOnEscalation', 'ExpandVolume', 'NotifyExpanded']);
    expect(sim.inputs.ExpandVolume).toMatchObject({
      DocumentName: 'StemeDB-ExpandVolume',
      RuntimeParameters: { InstanceId: [INSTANCE], FallbackToArchive: ['false'], DryRun: ['false'] },
    });
  });

  it('uses the host cleanup df when the disk report after is missing', () => {
    const sim = walk({ cleanupUsed: 97 });
    expect(sim.path).toContain('ExpandVolume');
  });

  it('does not expand when EscalateToExpand is false: notifies and ends Failed', () => {
    const sim = walk({ reportUsed: 99, cleanupUsed: 99, params: { EscalateToExpand: 'false' } });
    expect(sim.path.slice(-3)).toEqual(['BranchOnEscalation', 'NotifyStillFull', 'FailStillFull']);
    expect(sim.status).toBe('Failed');
  });

  it('honours a lower EscalateUsedPercent', () => {
    expect(walk({ reportUsed: 91, cleanupUsed: 91, params: { EscalateUsedPercent: '90' } }).path).toContain(
      'ExpandVolume',
    );
  });

  it('ends Failed after notifying when the expansion fails', () => {
    const sim = walk({ reportUsed: 99, cleanupUsed: 99, failing: ['ExpandVolume'] });
    expect(sim.path.slice(-3)).toEqual(['ExpandVolume', 'NotifyStillFull', 'FailStillFull']);
    expect(sim.status).toBe('Failed');
  });

  it('never expands when the usage after is unknown: it notifies and ends Failed', () => {
    const sim = walk({});
    expect(sim.path).not.toContain('ExpandVolume');
    expect(sim.path.slice(-2)).toEqual(['NotifyStillFull', 'FailStillFull']);
  });

  it('still cleans the host when ArchiveWal fails, and the execution ends Failed', () => {
    const sim = walk({ reportUsed: 80, cleanupUsed: 80, failing: ['ArchiveWal'] });
    expect(sim.path.slice(0, 3)).toEqual(['DiskReportBefore', 'ArchiveWal', 'HostCleanup']);
    expect(sim.path).toContain('Notify');
    expect(notificationOf(sim, 'Notify').Message).toContain('ArchiveWal): Failed');
    expect(sim.status).toBe('Failed');
  });

  it('goes on to validate and report when the host cleanup fails, and ends Failed', () => {
    const sim = walk({ reportUsed: 80, cleanupUsed: 80, failing: ['HostCleanup'] });
    expect(sim.path).toContain('Validate');
    expect(sim.status).toBe('Failed');
  });

  it('notifies and ends Failed when Summarize itself fails', () => {
    const sim = walk({ reportUsed: 80, cleanupUsed: 80, failing: ['Summarize'] });
    expect(sim.path.slice(-2)).toEqual(['NotifyFailure', 'FailExecution']);
    expect(sim.status).toBe('Failed');
  });

  it('passes DryRun to every child and skips the validation test write in a dry run', () => {
    const sim = walk({ reportUsed: 99, cleanupUsed: 99, params: { DryRun: 'true' } });
    expect(sim.path).not.toContain('Validate');
    expect(sim.inputs.HostCleanup).toMatchObject({ Parameters: { DryRun: 'true' } });
    expect(sim.inputs.ArchiveWal).toMatchObject({ RuntimeParameters: { DryRun: ['true'] } });
    expect(sim.inputs.ExpandVolume).toMatchObject({ RuntimeParameters: { DryRun: ['true'] } });
  });

  it('passes only declared parameters to the host command, each matching its pattern', () => {
    const sim = walk({ reportUsed: 50, cleanupUsed: 50 });
    const params = (sim.inputs.HostCleanup as { Parameters: Record<string, string> }).Parameters;
    for (const [name, value] of Object.entries(params)) {
      const spec = doc.parameters?.[name];
      expect(spec, name).toBeDefined();
      if (spec?.allowedPattern) expect(new RegExp(spec.allowedPattern).test(value), name).toBe(true);
      if (spec?.allowedValues) expect(spec.allowedValues).toContain(value);
    }
  });
});
