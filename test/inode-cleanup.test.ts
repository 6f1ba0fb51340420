/**
 * InodeCleanup (runbook §4): the synthesized `<Prefix>-Host-InodeCleanup` Command document run like
 * the SSM agent runs it, on a real ext4 made with few inodes (`mkfs.ext4 -N 256`) on a loop device
 * and filled until no inode is free; its parameters against hostile values; and the
 * `<Prefix>-InodeCleanup` Automation walked through its paths with its embedded Python run on stub
 * AWS answers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AutomationDocumentContent } from '../lib/automation-document';
import type { CommandDocumentContent } from '../lib/command-document';
import { executeScriptStep } from './support/automation-python';
import { type StepResult, simulateAutomation } from './support/automation-validator';
import { type RunResult, runCommandDocument, runScriptDirectly } from './support/command-document-runner';
import { checksumTree, type DiskOptions, LoopDeviceLab } from './support/loop-device';
import {
  acceptsValue,
  HOSTILE_ANYWHERE,
  HOSTILE_PATHS,
  nearMisses,
  type OperatorParameter,
} from './support/operator-parameters';
import {
  TEST_INSTANCE as INSTANCE,
  isAValidAutomationDocument,
  loadSectionAutomation,
  notificationOf,
} from './support/section-automation';
import {
  rejectsHostileValuesBeforeAnyShellRuns,
  sectionOnLoopDisk,
  shellInjections,
  suiteTempDir,
} from './support/section-bed';
import { cleanupsAfterEach } from './support/service-bed';

/** A 16 MiB ext4 made with 256 inodes (and no root reserve): a test can take every one. */
const FEW_INODES: DiskOptions = { sizeMiB: 16, fs: 'ext4', mkfsArgs: ['-N', '256', '-m', '0'] };

let doc: CommandDocumentContent;
let mount: string;
const outside = suiteTempDir('inode-outside');
const lab = new LoopDeviceLab('inode-cleanup-');

beforeAll(() => {
  ({ doc, mount } = sectionOnLoopDisk(lab, 'InodeCleanup', FEW_INODES));
});
afterAll(() => lab.cleanup());

const cleanups = cleanupsAfterEach();

function aged(path: string, content: string, minutesAgo: number): void {
  writeFileSync(path, content);
  execFileSync('touch', ['-h', '-d', `@${Math.floor(Date.now() / 1000 - minutesAgo * 60)}`, path]);
}

function inodesFree(): number {
  const out = execFileSync('df', ['--output=iavail', mount], { encoding: 'utf8' });
  return Number(out.trim().split('\n')[1]);
}

/**
 * The §4 situation: db/ and tmp/ full of old empty files and *.tmp files, a WAL directory of
 * empty segments, files that must stay, and the rest of the inodes taken until none is free.
 */
function exhaust(): void {
  for (const d of ['db', 'tmp', 'wal']) mkdirSync(join(mount, d));
  cleanups.push(() => {
    for (const d of readdirSync(mount))
      if (d !== 'lost+found') rmSync(join(mount, d), { recursive: true, force: true });
  });
  for (let i = 0; i < 40; i++) aged(join(mount, 'db', `empty-${i}`), '', 120);
  for (let i = 0; i < 40; i++) aged(join(mount, 'tmp', `job-${i}.tmp`), 'partial', 120);
  for (let i = 0; i < 30; i++) aged(join(mount, 'wal', `segment-${i}.log`), '', 120);
  aged(join(mount, 'wal', 'stale.tmp'), '', 120);
  aged(join(mount, 'db', 'data.kv'), 'records', 120);
  aged(join(mount, 'db', 'fresh-empty'), '', 5);
  aged(join(mount, 'db', 'fresh.tmp'), 'x', 5);
  aged(join(mount, 'db', 'open-empty'), '', 120);
  for (let i = 0; ; i++) {
    try {
      writeFileSync(join(mount, 'db', `keep-${i}.kv`), 'x');
    } catch {
      break;
    }
  }
  expect(inodesFree()).toBe(0);
}

function run(params: Record<string, string> = {}): Promise<RunResult> {
  return runCommandDocument(doc, { MountPoint: mount, ...params });
}

describe('Host-InodeCleanup on a filesystem with no free inode', () => {
  it('frees inodes: old *.tmp and empty files go; non-empty, open and fresh files stay', async () => {
    exhaust();
    const fd = openSync(join(mount, 'db', 'open-empty'), 'r');
    try {
      const r = await run();
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.lastJson).toMatchObject({ status: 'cleaned', filesDeleted: 80, inodesFreed: 80 });
      expect(r.lastJson?.before).toMatchObject({ inodesFree: 0 });
      expect(inodesFree()).toBe(80);
      expect(readdirSync(join(mount, 'tmp'))).toEqual([]);
      const db = readdirSync(join(mount, 'db'));
      expect(db.filter((n) => n.startsWith('empty-'))).toEqual([]);
      for (const kept of ['data.kv', 'fresh-empty', 'fresh.tmp', 'open-empty', 'keep-0.kv'])
        expect(db).toContain(kept);
      expect(r.lastJson?.allowedDirs).toContainEqual(
        expect.objectContaining({ dir: join(mount, 'db'), skippedOpen: 1, skippedRecent: 2 }),
      );
    } finally {
      closeSync(fd);
    }
  });

  it('reports df -i and the busiest directories, as the runbook diagnostic does', async () => {
    exhaust();
    const r = await run({ DryRun: 'true', TopDirs: '2' });
    const busiest = r.lastJson?.busiestDirs as { dir: string; entries: number }[];
    expect(busiest).toHaveLength(2);
    expect(busiest[0]?.dir).toBe(join(mount, 'db'));
    expect(r.stderr).toMatch(/IUse%/);
  });

  it('never touches the WAL directory, even bind-mounted inside an allowed directory', async () => {
    exhaust();
    rmSync(join(mount, 'db', 'keep-0.kv'));
    mkdirSync(join(mount, 'tmp', 'wal-alias'));
    execFileSync('mount', ['--bind', join(mount, 'wal'), join(mount, 'tmp', 'wal-alias')]);
    cleanups.push(() => {
      spawnSync('umount', [join(mount, 'tmp', 'wal-alias')]);
    });
    const sums = readdirSync(join(mount, 'wal')).sort();
    const r = await run({ MinAgeMinutes: '1' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readdirSync(join(mount, 'wal')).sort()).toEqual(sums);
    expect(existsSync(join(mount, 'wal', 'stale.tmp'))).toBe(true);
    expect(r.lastJson?.allowedDirs).toContainEqual(
      expect.objectContaining({ dir: join(mount, 'tmp'), excluded: [join(mount, 'tmp', 'wal-alias')] }),
    );
  });

  it.each([
    ['the WAL directory', (m: string) => `${m}/wal`],
    ['the mount point (it contains the WAL directory)', (m: string) => m],
    ['a directory inside the WAL directory', (m: string) => `${m}/wal/sub`],
    ['a directory outside the mount point', () => '/etc'],
  ])('refuses %s as an allowed directory and deletes nothing', async (_what, dir) => {
    exhaust();
    const sums = checksumTree(mount);
    const r = await run({ AllowedDirs: `${mount}/db:${dir(mount)}` });
    expect(r.exitCode).toBe(2);
    expect(r.lastJson?.status).toBe('refused');
    expect(checksumTree(mount)).toEqual(sums);
  });

  it('refuses an allowed directory that is a symlink, and does not follow symlinks inside one', async () => {
    exhaust();
    aged(join(outside, 'victim.tmp'), 'x', 600);
    aged(join(outside, 'victim-empty'), '', 600);
    cleanups.push(() => rmSync(join(outside, 'victim.tmp'), { force: true }));
    cleanups.push(() => rmSync(join(outside, 'victim-empty'), { force: true }));
    const before = checksumTree(outside);
    // Symlinks need no inode on ext4 only when fast; make room first.
    rmSync(join(mount, 'db', 'keep-0.kv'));
    rmSync(join(mount, 'db', 'keep-1.kv'));
    symlinkSync(outside, join(mount, 'db', 'link-out'));
    symlinkSync(outside, join(mount, 'tmp-link'));
    const refused = await run({ AllowedDirs: join(mount, 'tmp-link') });
    expect(refused.exitCode).toBe(2);
    const r = await run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(checksumTree(outside)).toEqual(before);
  });

  it('keeps its result valid JSON when a directory name holds a carriage return', async () => {
    exhaust();
    const odd = join(mount, 'db', 'odd\rname');
    // Free a few inodes to create the odd directory and its files; the rest stays exhausted.
    for (let i = 0; i < 8; i++) rmSync(join(mount, 'db', `keep-${i}.kv`));
    mkdirSync(odd);
    for (let i = 0; i < 5; i++) aged(join(odd, `e-${i}`), '', 120);
    const r = await run({ DryRun: 'true', TopDirs: '50' });
    expect(r.exitCode, r.stderr).toBe(0);
    const busiest = r.lastJson?.busiestDirs as { dir: string }[];
    expect(busiest.map((b) => b.dir)).toContain(odd);
  });

  it('deletes nothing in a dry run, counting what it would delete', async () => {
    exhaust();
    const listing = (): string =>
      execFileSync('find', [mount, '-printf', '%P %y %s %T@\n'], { encoding: 'utf8' });
    const before = listing();
    const sums = checksumTree(mount);
    const r = await run({ DryRun: 'true' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(listing()).toBe(before);
    expect(checksumTree(mount)).toEqual(sums);
    expect(r.lastJson).toMatchObject({ status: 'dry-run', filesDeleted: 81, inodesFreed: 0 });
  });
});

// ---------------------------------------------------------------------------------------------
// Parameters

const marker = join(tmpdir(), `pwned-inode-cleanup-${process.pid}`);
const INJECTIONS = shellInjections(marker);
const PATHS = ['/data/..', '/../etc', '/data/../etc', '/data/./db', 'data', '/da ta', '/', '/data/', '/.x'];
const HOSTILE: Record<string, readonly string[]> = {
  MountPoint: [...INJECTIONS, ...PATHS, ''],
  WalDir: [...INJECTIONS, ...PATHS],
  AllowedDirs: [
    ...INJECTIONS,
    ...PATHS,
    '/data/db:',
    ':/data/db',
    '/data/db::/data/tmp',
    '/data/db;/x',
    '/data/db:../x',
  ],
  MinAgeMinutes: [...INJECTIONS, '0', '-1', '1000000', '60m', ''],
  TopDirs: [...INJECTIONS, '0', '101', '20 ', ''],
  DryRun: [...INJECTIONS, 'yes', 'TRUE', 'true\n', ''],
};

describe('Host-InodeCleanup parameters', () => {
  rejectsHostileValuesBeforeAnyShellRuns(() => doc, marker, HOSTILE);

  it.each(['MountPoint', 'AllowedDirs', 'MinAgeMinutes', 'DryRun'])(
    'the script refuses a bad %s again when run by hand',
    (name) => {
      const bad = {
        MountPoint: '/x/../etc',
        AllowedDirs: '/data/db:../x',
        MinAgeMinutes: '0',
        DryRun: 'maybe',
      }[name] as string;
      const r = runScriptDirectly('inode-cleanup.sh', { [name]: bad });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^inode-cleanup: ${name} is invalid`));
    },
  );
});

// ---------------------------------------------------------------------------------------------
// The Automation

const automation = (): AutomationDocumentContent => loadSectionAutomation('InodeCleanup');

interface Scenario {
  /** inodes free % in the host cleanup's df -i after (undefined: no result) */
  readonly afterCleanup?: number;
  /** inodes free % in the disk report after */
  readonly afterReport?: number;
  readonly failing?: readonly string[];
  readonly params?: Record<string, string>;
}

function walk(s: Scenario) {
  const doc = automation();
  const cleanup =
    s.afterCleanup === undefined
      ? { Status: 'Failed', ResponseCode: 2, StandardOutputContent: '', StandardErrorContent: 'refused' }
      : {
          Status: 'Success',
          ResponseCode: 0,
          StandardOutputContent: JSON.stringify({
            status: 'cleaned',
            filesDeleted: 80,
            inodesFreed: 80,
            before: { inodesFreePercent: 0 },
            after: { inodesFreePercent: s.afterCleanup },
            allowedDirs: [
              { dir: '/data/db', status: 'cleaned', deleted: 40, skippedOpen: 1, skippedRecent: 2 },
            ],
            busiestDirs: [{ dir: '/data/db', entries: 170 }],
          }),
        };
  const report =
    s.afterReport === undefined
      ? { error: 'InvocationDoesNotExist' }
      : {
          Status: 'Success',
          ResponseCode: 0,
          StandardOutputContent: `{"inodesFreePercent": ${s.afterReport}}`,
        };
  const ran: string[] = [];
  const ids: Record<string, string> = { InodeCleanup: 'c-clean', DiskReportAfter: 'c-after' };
  return simulateAutomation(doc, { InstanceId: INSTANCE, ...s.params }, (name, inputs): StepResult => {
    ran.push(name);
    if (s.failing?.includes(name)) return { status: 'Failed' };
    if (name === 'CheckInodes' || name === 'Summarize') {
      const stepExecutions: Record<string, unknown>[] = ran
        .filter((n) => ids[n] !== undefined)
        .map((n) => ({ StepName: n, StepStatus: 'Success', Outputs: { CommandId: [ids[n]] } }));
      if (ran.includes('ArchiveWal')) stepExecutions.push({ StepName: 'ArchiveWal', StepStatus: 'Success' });
      return executeScriptStep(doc, name, inputs, {
        get_automation_execution: [{ AutomationExecution: { StepExecutions: stepExecutions } }],
        get_command_invocation: name === 'CheckInodes' ? [cleanup] : [cleanup, report],
        list_commands: [{ Commands: [] }],
      });
    }
    if (name.startsWith('Fail')) return { status: 'Failed' };
    return { status: 'Success' };
  });
}

describe('StemeDB-InodeCleanup Automation', () => {
  isAValidAutomationDocument(() => automation());

  /** The values the host script may delete in, as root: this deployment's directories only. */
  const ALLOWED = {
    MountPoint: ['/data'],
    AllowedDirs: ['/data/db:/data/tmp', '/data/db', '/data/tmp'],
  } as const;

  /** Other mounts and directories, and lists that smuggle one in. */
  const OTHER_DIRS = [
    '/mnt/other',
    '/data2',
    '/data/wal',
    '/data',
    '/data/db/sub',
    '/data/tmp/../../etc',
    '/data/db:/data/wal',
    '/data/db:/etc',
    '/etc:/data/db',
    '/data/db:/data/tmp:/root',
    '/data/tmp:/data/db',
    '/data/db:',
    ':/data/db',
  ];

  it.each(Object.keys(ALLOWED) as Array<keyof typeof ALLOWED>)(
    '%s takes only the configured directories, its default first',
    (name) => {
      const spec = automation().parameters?.[name] as OperatorParameter | undefined;
      expect(spec?.default).toBe(ALLOWED[name][0]);
      for (const v of ALLOWED[name]) expect(acceptsValue(spec, v), v).toBe(true);
    },
  );

  it.each(Object.keys(ALLOWED) as Array<keyof typeof ALLOWED>)(
    '%s refuses every other mount, directory or list',
    (name) => {
      const spec = automation().parameters?.[name] as OperatorParameter | undefined;
      const tried = [
        ...HOSTILE_ANYWHERE,
        ...HOSTILE_PATHS,
        ...OTHER_DIRS,
        ...ALLOWED[name].flatMap(nearMisses),
      ].filter((v) => !(ALLOWED[name] as readonly string[]).includes(v));
      expect(tried.filter((v) => acceptsValue(spec, v))).toEqual([]);
    },
  );

  it('cleans and notifies without archiving when the host cleanup recovered the inodes', () => {
    const sim = walk({ afterCleanup: 47, afterReport: 47 });
    expect(sim.path).toEqual([
      'DiskReportBefore',
      'InodeCleanup',
      'CheckInodes',
      'BranchOnInodes',
      'DiskReportAfter',
      'Summarize',
      'BranchOnRecovered',
      'Notify',
    ]);
    expect(sim.status).toBe('Success');
    expect(sim.inputs.InodeCleanup).toMatchObject({
      DocumentName: 'StemeDB-Host-InodeCleanup',
      Parameters: { AllowedDirs: '/data/db:/data/tmp', WalDir: '/data/wal', DryRun: 'false' },
    });
  });

  it('archives WAL through ArchiveWal when inodes are still exhausted, then notifies when recovered', () => {
    const sim = walk({ afterCleanup: 3, afterReport: 30 });
    expect(sim.path).toContain('ArchiveWal');
    expect(sim.inputs.ArchiveWal).toMatchObject({
      DocumentName: 'StemeDB-ArchiveWal',
      RuntimeParameters: { InstanceId: [INSTANCE], OlderThanDays: ['7'], DryRun: ['false'] },
    });
    expect(sim.path.at(-1)).toBe('Notify');
    expect(notificationOf(sim, 'Notify').Message).toContain('ArchiveWal): Success');
  });

  it('archives when the host result is unknown (the archive is safe either way)', () => {
    expect(walk({ afterReport: 50 }).path).toContain('ArchiveWal');
  });

  it('notifies and ends Failed when inodes stay exhausted', () => {
    const sim = walk({ afterCleanup: 2, afterReport: 4 });
    expect(sim.path.slice(-3)).toEqual(['BranchOnRecovered', 'NotifyNotRecovered', 'FailNotRecovered']);
    expect(notificationOf(sim, 'NotifyNotRecovered').Message).toContain('AddDataVolume');
    expect(sim.status).toBe('Failed');
  });

  it('still reports and notifies when ArchiveWal fails, and ends Failed', () => {
    const sim = walk({ afterCleanup: 2, afterReport: 40, failing: ['ArchiveWal'] });
    expect(sim.path).toContain('Summarize');
    expect(sim.status).toBe('Failed');
  });

  it('ends Succeeded in a dry run, passing DryRun to the host and to ArchiveWal', () => {
    const sim = walk({ afterCleanup: 0, afterReport: 0, params: { DryRun: 'true' } });
    expect(sim.inputs.InodeCleanup).toMatchObject({ Parameters: { DryRun: 'true' } });
    expect(sim.inputs.ArchiveWal).toMatchObject({ RuntimeParameters: { DryRun: ['true'] } });
    expect(sim.path.at(-1)).toBe('Notify');
    expect(sim.status).toBe('Success');
  });

  it('notifies and ends Failed when CheckInodes fails', () => {
    const sim = walk({ afterCleanup: 50, failing: ['CheckInodes'] });
    expect(sim.path.slice(-2)).toEqual(['NotifyFailure', 'FailExecution']);
    expect(sim.status).toBe('Failed');
  });
});
