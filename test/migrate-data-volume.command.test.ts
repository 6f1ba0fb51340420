/**
 * Runbook §5B on the host: ssm-documents/scripts/migrate-data-volume.sh run through its
 * synthesized Command document (FstabFile restricted to a temp fstab, as the stack restricts it
 * to /etc/fstab) on real parts: loop devices as the old and the new disk (the new one given by
 * device path), the StemeDB stand-in as the service under the fake systemctl, and failures
 * injected after the stop by stand-ins first on PATH (rsync failing its final pass, the service
 * writing at shutdown until the new disk is too small, a unit that will not start on the new
 * disk, a root filesystem that fills up before the fstab write). One synth and one old disk for
 * the whole file; each test takes a fresh new disk.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandDocument, CommandDocumentContent } from '../lib/command-document';
import { FSTAB_FILE, restrictFstabFile } from '../lib/migrate-data-volume';
import {
  ParameterValidationError,
  type RunResult,
  runCommandDocument,
  runScriptDirectly,
} from './support/command-document-runner';
import { createFakeSystemd, type FakeSystemd } from './support/fake-systemd';
import { isMounted, LoopDeviceLab, type LoopDisk, sh } from './support/loop-device';
import { synthesizeMigrateDataVolume } from './support/migrate-data-volume-document';
import { freePort, standinCommand } from './support/stemedb-standin';

const UNIT = 'stemedb-api';
const MiB = 1024 * 1024;
/** What the service writes at shutdown in the too-small case. */
const FLUSH_MIB = 96;

// --- a snapshot of a tree, everything that must survive a copy -----------------------------------

interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  mtimeNs: string;
  nlink?: number;
  /** Paths sharing the inode (hard links), as the index of the first one seen. */
  linkGroup?: string;
  target?: string;
  sha256?: string;
  sparse?: boolean;
  xattrs: string;
}

/** Python, one process per snapshot (a getfattr per path would take seconds). */
const SNAPSHOT_PY = `
import hashlib, json, os, stat, sys
root = sys.argv[1]
out, inodes = {}, {}
def walk(rel):
    full = os.path.join(root, rel) if rel else root
    st = os.lstat(full)
    m = st.st_mode
    t = 'dir' if stat.S_ISDIR(m) else 'file' if stat.S_ISREG(m) else 'symlink' if stat.S_ISLNK(m) else 'fifo' if stat.S_ISFIFO(m) else 'other'
    e = {'type': t, 'mode': m, 'uid': st.st_uid, 'gid': st.st_gid, 'mtimeNs': str(st.st_mtime_ns), 'xattrs': ''}
    if t != 'symlink':
        e['xattrs'] = ';'.join(sorted(n + '=0x' + os.getxattr(full, n, follow_symlinks=False).hex() for n in os.listxattr(full, follow_symlinks=False)))
    if t == 'file':
        h = hashlib.sha256()
        with open(full, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                h.update(block)
        e.update(size=st.st_size, nlink=st.st_nlink, sha256=h.hexdigest(), sparse=st.st_blocks * 512 < st.st_size,
                 linkGroup=inodes.setdefault(st.st_ino, rel))
    if t == 'symlink':
        e['target'] = os.readlink(full)
    out[rel] = e
    if t == 'dir':
        for name in sorted(os.listdir(full)):
            if rel == '' and name == 'lost+found':
                continue
            walk(os.path.join(rel, name) if rel else name)
walk('')
json.dump(out, sys.stdout)
`;

/** Every path under `root` (lost+found excepted) with its metadata, content hash and xattrs (ACLs included). */
function snapshot(root: string): Record<string, Entry> {
  const r = spawnSync('python3', ['-c', SNAPSHOT_PY, root], { encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`snapshot of ${root} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, Entry>;
}

const ODD_NAME = 'db/a file with spaces\nand a newline.kv';

/** A data directory with everything rsync can get wrong. */
function populate(root: string): void {
  const db = join(root, 'db');
  const wal = join(root, 'wal');
  mkdirSync(db, { recursive: true });
  mkdirSync(wal, { recursive: true });
  mkdirSync(join(root, 'empty', 'nested'), { recursive: true });
  for (let i = 0; i < 40; i++) {
    writeFileSync(
      join(db, `part-${String(i).padStart(3, '0')}.kv`),
      createHash('sha256')
        .update(`p${i}`)
        .digest()
        .toString('hex')
        .repeat(2000 + i),
    );
  }
  for (let i = 0; i < 5; i++)
    writeFileSync(join(wal, `segment-${String(i).padStart(6, '0')}.log`), Buffer.alloc(4 * MiB, i + 1));
  // 64 MiB sparse: data at 0, 20 MiB and the last byte, holes in between.
  const sparse = join(db, 'sparse.kv');
  sh('truncate', ['-s', '64M', sparse]);
  sh('dd', ['if=/dev/urandom', `of=${sparse}`, 'bs=64K', 'count=4', 'conv=notrunc', 'status=none']);
  sh('dd', ['if=/dev/urandom', `of=${sparse}`, 'bs=1M', 'seek=20', 'count=1', 'conv=notrunc', 'status=none']);
  // Hard links, in one directory and across two.
  writeFileSync(join(db, 'manifest.kv'), 'manifest v1\n');
  linkSync(join(db, 'manifest.kv'), join(db, 'manifest.kv.link'));
  linkSync(join(db, 'manifest.kv'), join(wal, 'manifest-link.kv'));
  // Odd names, a symlink (and a dangling one), a fifo.
  writeFileSync(join(root, ODD_NAME), 'odd name\n');
  writeFileSync(join(db, 'tab\tand-ü.kv'), 'tab\n');
  symlinkSync('manifest.kv', join(db, 'CURRENT'));
  symlinkSync('/nonexistent/target', join(db, 'dangling'));
  sh('mkfifo', [join(db, 'pipe')]);
  // Owners, modes (setuid, sticky), xattrs and an ACL.
  const owned = join(db, 'owned.kv');
  writeFileSync(owned, 'owned\n');
  chownSync(owned, 1234, 5678);
  chmodSync(owned, 0o4750);
  chmodSync(join(root, 'empty'), 0o1777);
  chownSync(join(root, 'empty', 'nested'), 4321, 4321);
  chmodSync(join(root, 'empty', 'nested'), 0o700);
  sh('setfattr', ['-n', 'user.stemedb.checksum', '-v', 'abc123', join(db, 'manifest.kv')]);
  sh('setfattr', ['-n', 'user.stemedb.binary', '-v', '0x00ff10', join(root, ODD_NAME)]);
  sh('setfacl', ['-m', 'u:1234:r,g:5678:rw', join(db, 'part-001.kv')]);
  sh('setfattr', ['-n', 'user.dir', '-v', 'yes', db]);
  // Times with sub-second parts, on files, a directory and set last on the root.
  utimesSync(join(db, 'part-000.kv'), 1_700_000_000.123456, 1_700_000_000.987654);
  utimesSync(join(root, 'empty', 'nested'), 1_600_000_000.5, 1_600_000_000.25);
  sh('touch', ['-h', '-d', '2023-03-04 05:06:07.891', join(db, 'CURRENT')]);
}

/** The fields of the script's JSON result these tests read. */
interface MigrationResult {
  readonly status: string;
  readonly new: { readonly state: string };
  readonly verify: { readonly identical: boolean; readonly files: number; readonly bytes: number };
  readonly timings: Readonly<Record<string, number | null>>;
}

// --- the host -------------------------------------------------------------------------------

const lab = new LoopDeviceLab('migrate-data-volume-');
let root: string;
let mount: string;
let staging: string;
let fstab: string;
let etcDir: string;
let hooksDir: string;
let oldDisk: LoopDisk;
let oldUuid: string;
let doc: CommandDocumentContent;
let systemd: FakeSystemd;
let healthUrl: string;
let baseline: Record<string, Entry>;
let fstabText: string;
const extraCleanups: Array<() => void> = [];

function uuidOf(device: string): string {
  return sh('blkid', ['-p', '-o', 'value', '-s', 'UUID', device]).trim();
}

function mountedUuid(path: string): string {
  const source =
    sh('findmnt', ['-n', '-r', '-o', 'SOURCE', '--mountpoint', path]).trim().split('\n').pop() ?? '';
  return uuidOf(source);
}

function signatures(device: string): string {
  return spawnSync('wipefs', ['--no-act', '--noheadings', '--output', 'TYPE', device], {
    encoding: 'utf8',
  }).stdout.trim();
}

function deviceSha256(device: string): string {
  return sh('sha256sum', [device]).split(' ')[0] ?? '';
}

/** Health, asked up to three times: a kept-alive connection the server just closed fails once. */
async function healthy(): Promise<boolean> {
  for (let i = 0; i < 3; i++) {
    const ok = await fetch(healthUrl).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function waitHealthy(): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await healthy()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `the stand-in never became healthy: ${systemd
      .journal(UNIT)
      .map((e) => e.message)
      .join(' | ')}`,
  );
}

function unitCommand(): { command: string[]; workingDirectory: string } {
  return standinCommand({ port: Number(new URL(healthUrl).port), dataDir: mount });
}

function fstabBackups(): string[] {
  return readdirSync(etcDir).filter((f) => f.startsWith('fstab.bak-'));
}

/** Runs the synthesized document; `env` adds to the hooks' and the fake systemd's PATH. */
async function migrate(params: Record<string, string>, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  const r = await runCommandDocument(
    doc,
    {
      MountPoint: mount,
      StagingDir: staging,
      FstabFile: fstab,
      ServiceName: UNIT,
      HealthUrl: healthUrl,
      HealthTimeoutSeconds: '20',
      DeviceWaitSeconds: '0',
      ...params,
    },
    { env: { PATH: `${hooksDir}:${systemd.env.PATH}`, ...env }, timeoutMs: 240_000 },
  );
  if (process.env.MIGRATE_DEBUG) console.log(r.stderr);
  return r;
}

/** The old disk is mounted at the data mount, its data and fstab exactly as at the start, the service healthy. */
async function expectOldStateIntact(): Promise<void> {
  expect(isMounted(mount)).toBe(true);
  expect(mountedUuid(mount)).toBe(oldUuid);
  expect(isMounted(staging)).toBe(false);
  expect(readFileSync(fstab, 'utf8')).toBe(fstabText);
  expect(snapshot(mount)).toEqual(baseline);
  expect(
    await healthy(),
    systemd
      .journal(UNIT)
      .map((e) => e.message)
      .join('\n'),
  ).toBe(true);
}

/** A script in the hooks directory, run by the systemctl stand-in right after a successful `stop`. */
function onStop(script: string | undefined): void {
  const file = join(hooksDir, 'on-stop.sh');
  if (script === undefined) rmSync(file, { force: true });
  else writeFileSync(file, `#!/usr/bin/env bash\n${script}\n`, { mode: 0o755 });
}

beforeAll(async () => {
  root = lab.root;
  mount = join(root, 'data');
  staging = join(root, 'staging');
  etcDir = join(root, 'etc');
  hooksDir = join(root, 'hooks');
  mkdirSync(etcDir);
  mkdirSync(hooksDir);
  // /etc on a small tmpfs of its own, so a test can fill it (a full root disk).
  sh('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0755', 'tmpfs', etcDir]);
  extraCleanups.push(() => {
    spawnSync('umount', [etcDir]);
  });
  fstab = join(etcDir, 'fstab');
  doc = synthesizeMigrateDataVolume(fstab);

  oldDisk = lab.createDisk({ sizeMiB: 512, fs: 'xfs', mount: false });
  lab.mount(oldDisk, mount);
  oldUuid = uuidOf(oldDisk.fsDevice);
  populate(mount);
  fstabText = `# /etc/fstab: static file system information.\nUUID=0a1b2c3d-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1\nUUID=${oldUuid} ${mount} xfs defaults,noatime 0 0\n/swapfile none swap sw 0 0\n`;
  writeFileSync(fstab, fstabText, { mode: 0o644 });

  // Stand-ins first on PATH: systemctl (the fake, plus on-stop.sh) and rsync (fails its final
  // pass, the one run while the unit is stopped, when fail-final-rsync exists).
  const port = await freePort();
  healthUrl = `http://127.0.0.1:${port}/v1/health`;
  systemd = createFakeSystemd({ [UNIT]: standinCommand({ port, dataDir: mount }) });
  const realRsync = sh('bash', ['-c', 'command -v rsync']).trim();
  writeFileSync(
    join(hooksDir, 'systemctl'),
    `#!/usr/bin/env bash\n"${systemd.binDir}/systemctl" "$@"; rc=$?\nif [ "$1" = stop ] && [ $rc = 0 ] && [ -x "${hooksDir}/on-stop.sh" ]; then "${hooksDir}/on-stop.sh"; fi\nexit $rc\n`,
    { mode: 0o755 },
  );
  writeFileSync(
    join(hooksDir, 'rsync'),
    `#!/usr/bin/env bash\nif [ -e "${hooksDir}/fail-final-rsync" ] && [[ " $* " != *" --dry-run "* ]] && ! "${systemd.binDir}/systemctl" is-active -q ${UNIT}; then echo "rsync: [receiver] write failed: Input/output error (5)" >&2; exit 23; fi\nexec "${realRsync}" "$@"\n`,
    { mode: 0o755 },
  );
  const started = await systemd.systemctl('start', UNIT);
  if (started.code !== 0) throw new Error(`cannot start the stand-in: ${started.stderr}`);
  await waitHealthy();
  baseline = snapshot(mount);
}, 120_000);

afterAll(async () => {
  await systemd?.cleanup();
  for (const mp of [staging, join(root, 'old-check')])
    if (mp !== undefined && isMounted(mp)) spawnSync('umount', [mp]);
  for (const fn of extraCleanups.reverse()) fn();
  lab.cleanup();
}, 60_000);

// ---------------------------------------------------------------------------------------------

describe('parameters', () => {
  it('the document rejects hostile values before anything runs', async () => {
    const hostile: Array<[string, string]> = [
      ['MountPoint', '/data; rm -rf /'],
      ['MountPoint', '/'],
      ['MountPoint', '/data/../etc'],
      ['MountPoint', 'data'],
      ['Device', '/dev/../etc/passwd'],
      ['Device', '/dev/sdf; reboot'],
      ['Device', '/tmp/disk'],
      ['VolumeId', 'vol-$(id)'],
      ['VolumeId', 'vol-0123456789abcdef0 '],
      ['CurrentVolumeId', 'vol-xyz'],
      ['Filesystem', 'btrfs'],
      ['Filesystem', 'xfs -f'],
      ['InodeRatio', '1024; reboot'],
      ['InodeRatio', '512'],
      ['StagingDir', '/mnt/$(reboot)'],
      ['FstabFile', '/etc/shadow'],
      ['FstabFile', FSTAB_FILE],
      ['ServiceName', 'stemedb-api; reboot'],
      ['HealthUrl', 'http://evil.example.com/v1/health'],
      ['HealthTimeoutSeconds', '901'],
      ['PreSyncPasses', '9'],
      ['DeviceWaitSeconds', '-1'],
      ['Action', 'format'],
      ['DryRun', 'yes'],
    ];
    for (const [name, value] of hostile) {
      await expect(migrate({ [name]: value }), `${name}=${JSON.stringify(value)}`).rejects.toThrow(
        ParameterValidationError,
      );
    }
  });

  it('only the fstab the stack configures is accepted (the YAML alone admits /etc/fstab)', () => {
    expect(doc.parameters?.FstabFile?.allowedValues).toEqual([fstab]);
    expect(doc.parameters?.FstabFile?.default).toBe(fstab);
    expect(() => restrictFstabFile({} as CommandDocument, '/etc/../shadow')).toThrow(/plain names/);
  });

  it('the script re-checks its values when run by itself (exit 2, nothing done)', () => {
    const cases: Array<Record<string, string>> = [
      { MountPoint: '/data\n', Device: '/dev/loop0' },
      { MountPoint: '/data', Device: '/dev/loop0', Filesystem: 'vfat' },
      { MountPoint: '/data', Device: '/dev/loop0', StagingDir: '/data/staging' },
      { MountPoint: '/data', Device: '/dev/loop0', InodeRatio: '100' },
      { MountPoint: '/data' },
    ];
    for (const params of cases) {
      const r = runScriptDirectly('migrate-data-volume.sh', params);
      expect(r.status, JSON.stringify(params)).toBe(2);
      expect(JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}').status).toBe('refused');
    }
  });
});

describe('refusals, before anything is stopped', () => {
  it('refuses a new disk that already holds a filesystem, and does not touch it', async () => {
    const disk = lab.createDisk({ sizeMiB: 100, fs: 'ext4', mount: false });
    const before = deviceSha256(disk.device);
    const pid = systemd.mainPid(UNIT);
    const r = await migrate({ Device: disk.device });
    expect(r.exitCode, r.stderr).toBe(3);
    expect(r.lastJson?.status).toBe('refused');
    expect(String(r.lastJson?.reason)).toMatch(/is not blank .*filesystem ext4/);
    expect(deviceSha256(disk.device)).toBe(before);
    expect(systemd.mainPid(UNIT)).toBe(pid);
    expect(fstabBackups()).toEqual([]);
    await expectOldStateIntact();
  });

  it('refuses a disk with a partition table (no filesystem), untouched', async () => {
    const disk = lab.createDisk({ sizeMiB: 100, table: 'gpt', fs: 'none', mount: false });
    // The kernel's partition device counts as a use; without it, the table itself is found.
    spawnSync('partx', ['-d', disk.device]);
    const before = deviceSha256(disk.device);
    const r = await migrate({ Device: disk.device });
    expect(r.exitCode, r.stderr).toBe(3);
    expect(String(r.lastJson?.reason)).toMatch(/partition table gpt|has partitions/);
    expect(deviceSha256(disk.device)).toBe(before);
    await expectOldStateIntact();
  });

  it('refuses a disk smaller than the data, untouched; the disk the data is on counts as done', async () => {
    // MountPoint already on the disk given, and fstab naming it, is what a finished migration leaves.
    const self = await migrate({ Device: oldDisk.device });
    expect(self.lastJson?.status).toBe('already-migrated');
    const small = lab.createDisk({ sizeMiB: 32, fs: 'none', mount: false });
    const r = await migrate({ Device: small.device });
    expect(r.exitCode, r.stderr).toBe(3);
    expect(String(r.lastJson?.reason)).toMatch(/smaller than the .* bytes/);
    expect(signatures(small.device)).toBe('');
    await expectOldStateIntact();
  });

  it('DryRun checks everything, prints the fstab change and changes nothing', async () => {
    const disk = lab.createDisk({ sizeMiB: 700, fs: 'none', mount: false });
    const pid = systemd.mainPid(UNIT);
    const r = await migrate({ Device: disk.device, DryRun: 'true' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.lastJson?.status).toBe('dry-run');
    expect(r.stderr).toMatch(/\+UUID=[0-9a-f-]{36} .* xfs defaults,noatime,nofail 0 0/);
    expect(signatures(disk.device)).toBe('');
    expect(systemd.mainPid(UNIT)).toBe(pid);
    expect(fstabBackups()).toEqual([]);
    expect(readdirSync(etcDir).filter((f) => f.includes('migrate'))).toEqual([]);
    await expectOldStateIntact();
  });
});

describe('failures after the stop roll back', () => {
  let resumeDisk: LoopDisk;

  it('the final rsync fails: the old mount, data and fstab are as they were, the service runs again', async () => {
    resumeDisk = lab.createDisk({ sizeMiB: 1024, fs: 'none', mount: false });
    writeFileSync(join(hooksDir, 'fail-final-rsync'), '');
    try {
      const r = await migrate({ Device: resumeDisk.device });
      expect(r.exitCode, r.stderr).toBe(1);
      expect(r.lastJson).toMatchObject({
        status: 'rolled-back',
        rolledBack: true,
        rollbackHealthy: true,
        fstabChanged: false,
      });
      expect(String(r.lastJson?.reason)).toMatch(
        /final rsync failed \(exit 23\).*rolled back.*left as it is/,
      );
    } finally {
      rmSync(join(hooksDir, 'fail-final-rsync'), { force: true });
    }
    await expectOldStateIntact();
    // The new disk keeps the filesystem this migration made (for inspection, and to resume on).
    expect(signatures(resumeDisk.device)).toBe('xfs');
  });

  it('the new disk turns out too small once the service has flushed at shutdown', async () => {
    // ext4 can be small; xfs needs 300 MiB. The data uses about 60 MiB of the old disk now.
    const disk = lab.createDisk({ sizeMiB: 128, fs: 'none', mount: false });
    const flushed = join(mount, 'db', 'shutdown-flush.kv');
    onStop(`head -c ${FLUSH_MIB}M /dev/urandom > '${flushed}'`);
    let r: RunResult;
    try {
      r = await migrate({ Device: disk.device, Filesystem: 'ext4' });
    } finally {
      onStop(undefined);
    }
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.lastJson).toMatchObject({ status: 'rolled-back', rollbackHealthy: true });
    expect(String(r.lastJson?.reason)).toMatch(/final rsync failed \(exit (11|23)\)/);
    // The old filesystem holds everything, the flushed file included.
    expect(lstatSync(flushed).size).toBe(FLUSH_MIB * MiB);
    // Undo what the "shutdown flush" did to the old filesystem, to the nanosecond.
    rmSync(flushed);
    const ns = BigInt(baseline.db?.mtimeNs ?? '0');
    sh('touch', [
      '-m',
      '-d',
      `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`,
      join(mount, 'db'),
    ]);
    await expectOldStateIntact();
  });

  it('the service does not start on the new disk (ext4 with an inode ratio): rolled back', async () => {
    const disk = lab.createDisk({ sizeMiB: 700, fs: 'none', mount: false });
    const { command, workingDirectory } = unitCommand();
    const guard = join(hooksDir, 'refuse-new-disk.sh');
    writeFileSync(
      guard,
      `#!/usr/bin/env bash\nsrc=$(findmnt -n -r -o SOURCE --mountpoint '${mount}' | tail -n 1)\nif [ "$(blkid -p -o value -s UUID "$src")" != '${oldUuid}' ]; then echo 'ERROR: data directory is not the one this node was set up with' >&2; exit 1; fi\nexec "$@"\n`,
      { mode: 0o755 },
    );
    systemd.defineUnit(UNIT, { command: [guard, ...command], workingDirectory, startCheckMs: 1500 });
    try {
      const r = await migrate({ Device: disk.device, Filesystem: 'ext4', InodeRatio: '4096' });
      expect(r.exitCode, r.stderr).toBe(1);
      expect(r.lastJson).toMatchObject({ status: 'rolled-back', rollbackHealthy: true, fstabChanged: false });
      expect(String(r.lastJson?.reason)).toMatch(/systemctl start stemedb-api failed on the new filesystem/);
      expect(r.lastJson?.verify).toMatchObject({ identical: true });
    } finally {
      systemd.defineUnit(UNIT, unitCommand());
    }
    await expectOldStateIntact();
    // ext4 with one inode per 4 KiB, left for inspection.
    expect(signatures(disk.device)).toBe('ext4');
    const info = sh('dumpe2fs', ['-h', disk.device]);
    const inodes = Number(/^Inode count:\s+(\d+)/m.exec(info)?.[1]);
    const blocks = Number(/^Block count:\s+(\d+)/m.exec(info)?.[1]);
    const blockSize = Number(/^Block size:\s+(\d+)/m.exec(info)?.[1]);
    expect((blocks * blockSize) / inodes).toBeCloseTo(4096, -1);
  });

  it('the fstab write fails (the root filesystem filled up): rolled back', async () => {
    const disk = lab.createDisk({ sizeMiB: 700, fs: 'none', mount: false });
    const filler = join(etcDir, '.filler');
    onStop(`dd if=/dev/zero of='${filler}' bs=4k status=none 2>/dev/null; true`);
    let r: RunResult;
    try {
      r = await migrate({ Device: disk.device });
    } finally {
      onStop(undefined);
      rmSync(filler, { force: true });
    }
    expect(r.exitCode, r.stderr).toBe(1);
    expect(r.lastJson).toMatchObject({ status: 'rolled-back', rollbackHealthy: true, fstabChanged: false });
    expect(String(r.lastJson?.reason)).toMatch(/cannot write .*fstab/);
    for (const b of fstabBackups()) rmSync(join(etcDir, b));
    await expectOldStateIntact();
  });

  describe('then a run that succeeds', () => {
    let result: RunResult;

    it('resumes on the disk the failed run formatted and moves the data, preserved exactly', async () => {
      for (const b of fstabBackups()) rmSync(join(etcDir, b));
      result = await migrate({ Device: resumeDisk.device });
      expect(result.exitCode, result.stderr).toBe(0);
      const j = result.lastJson as unknown as MigrationResult;
      expect(j.status).toBe('migrated');
      expect(j.new.state).toBe('in-use');
      expect(result.stderr).toMatch(/resuming/);
      expect(j.verify).toMatchObject({ identical: true });
      expect(j.verify.files).toBeGreaterThan(40);
      const newUuid = uuidOf(resumeDisk.device);
      expect(mountedUuid(mount)).toBe(newUuid);
      expect(snapshot(mount)).toEqual(baseline);
      // Sparse files stay sparse; hard links stay linked (the snapshot compares link groups).
      expect(baseline['db/sparse.kv']?.sparse).toBe(true);
      expect(baseline['wal/manifest-link.kv']?.linkGroup).toBe('db/manifest.kv');
      expect(baseline[ODD_NAME]?.xattrs).toContain('user.stemedb.binary=0x00ff10');
      expect(baseline['db/part-001.kv']?.xattrs).toContain('system.posix_acl_access');
      expect(await healthy()).toBe(true);
      console.log(
        `migration of ${j.verify.files} files, ${j.verify.bytes} bytes: downtime ${j.timings.downtimeSeconds} s (stop ${j.timings.stopSeconds}, final copy ${j.timings.finalSyncSeconds}, verify ${j.timings.verifySeconds}, switch ${j.timings.switchSeconds}, start ${j.timings.startSeconds})`,
      );
    });

    it('switches fstab by UUID with nofail, keeps the old entry commented and a backup', () => {
      const newUuid = uuidOf(resumeDisk.device);
      const lines = readFileSync(fstab, 'utf8').split('\n');
      const at = lines.indexOf(`UUID=${newUuid} ${mount} xfs defaults,noatime,nofail 0 0`);
      expect(at).toBeGreaterThan(1);
      expect(lines[at - 1]).toBe(`#UUID=${oldUuid} ${mount} xfs defaults,noatime 0 0`);
      expect(lines[at - 2]).toMatch(/^# stemedb migrate-data-volume \S+: .* moved to UUID=/);
      expect(lines.filter((l) => l.includes('swap') || l.startsWith('UUID=0a1b2c3d'))).toHaveLength(2);
      const [backup] = fstabBackups();
      expect(backup).toBeDefined();
      expect(readFileSync(join(etcDir, backup as string), 'utf8')).toBe(fstabText);
      // The fstab mounts it, as a boot would.
      expect(
        spawnSync('findmnt', ['--tab-file', fstab, '-n', '-o', 'SOURCE', mount], {
          encoding: 'utf8',
        }).stdout.trim(),
      ).toBe(`UUID=${newUuid}`);
    });

    it('leaves the old disk unmounted and unchanged', () => {
      expect(spawnSync('findmnt', ['-n', '-S', oldDisk.fsDevice]).status).not.toBe(0);
      const check = join(root, 'old-check');
      mkdirSync(check, { recursive: true });
      sh('mount', ['-o', 'ro,norecovery', oldDisk.fsDevice, check]);
      try {
        expect(snapshot(check)).toEqual(baseline);
      } finally {
        sh('umount', [check]);
      }
    });

    it('a second run finds the migration done and changes nothing', async () => {
      const pid = systemd.mainPid(UNIT);
      const tab = readFileSync(fstab, 'utf8');
      const r = await migrate({ Device: resumeDisk.device });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.lastJson?.status).toBe('already-migrated');
      expect(systemd.mainPid(UNIT)).toBe(pid);
      expect(readFileSync(fstab, 'utf8')).toBe(tab);
      expect(fstabBackups()).toHaveLength(1);
      expect(snapshot(mount)).toEqual(baseline);
    });

    it('check-unused tells the old disk (unused now) from the new one (mounted)', async () => {
      const old = await migrate({ Action: 'check-unused', Device: oldDisk.device });
      expect(old.exitCode, old.stderr).toBe(0);
      expect(old.lastJson?.status).toBe('unused');
      const used = await migrate({ Action: 'check-unused', Device: resumeDisk.device });
      expect(used.exitCode).toBe(3);
      expect(used.lastJson?.status).toBe('in-use');
      expect(existsSync(mount)).toBe(true);
    });
  });
});
