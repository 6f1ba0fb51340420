import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CommandDocumentContent } from '../lib/command-document';
import {
  ParameterValidationError,
  type RunResult,
  runCommandDocument,
  synthesizeCommandDocument,
} from './support/command-document-runner';
import { checksumTree, dfBytes, LoopDeviceLab, type LoopDisk } from './support/loop-device';

/**
 * Host-ExpandVolume (the host half of §5A: grow the filesystem), run from the synthesized Command document (runner = local SSM agent) against
 * real loop devices: sparse images, GPT/MBR partitions, xfs/ext4, filled to 100%, grown the way
 * an EBS modification grows a disk (bigger backing file + `losetup -c`).
 */

let doc: CommandDocumentContent;
let work: string;
const skipFill = (rel: string) => rel.startsWith('.fill-');

/** Whether this process may resize a mounted ext4 (the sandbox lacks CAP_SYS_RESOURCE). */
function hasCapSysResource(): boolean {
  const line = readFileSync('/proc/self/status', 'utf8').match(/^CapEff:\s*([0-9a-f]+)$/m)?.[1] ?? '0';
  return ((Number.parseInt(line.slice(-8), 16) >>> 24) & 1) === 1;
}

function writeData(dir: string): void {
  mkdirSync(join(dir, 'wal'), { recursive: true });
  for (let i = 0; i < 5; i++) {
    writeFileSync(join(dir, 'wal', `segment-${i}.log`), `segment ${i} `.repeat(20_000 + i));
  }
  writeFileSync(join(dir, 'db.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
  execFileSync('sync');
}

function partitionBytes(disk: LoopDisk): number {
  return Number(execFileSync('blockdev', ['--getsize64', disk.fsDevice], { encoding: 'utf8' }).trim());
}

async function grow(mountPoint: string, extra: Record<string, string> = {}, env?: NodeJS.ProcessEnv) {
  return await runCommandDocument(doc, { MountPoint: mountPoint, ...extra }, env ? { env } : {});
}

function mountPointOf(disk: LoopDisk): string {
  if (disk.mountPoint === undefined) throw new Error('disk is not mounted');
  return disk.mountPoint;
}

/** A directory with an `lsblk` stand-in first on PATH that reports `serial`/`type` for `device`. */
function lsblkStandIn(
  name: string,
  device: string,
  answer: { serial?: string; type?: string },
): NodeJS.ProcessEnv {
  const dir = join(work, `standin-${name}`);
  mkdirSync(dir, { recursive: true });
  const script = [
    '#!/usr/bin/env bash',
    `if [[ " $* " == *" SERIAL "* && " $* " == *" ${device} "* && -n "${answer.serial ?? ''}" ]]; then echo "${answer.serial ?? ''}"; exit 0; fi`,
    `if [[ " $* " == *" TYPE "* && " $* " == *" ${device} "* && -n "${answer.type ?? ''}" ]]; then echo "${answer.type ?? ''}"; exit 0; fi`,
    'exec /usr/bin/lsblk "$@"',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'lsblk'), script);
  chmodSync(join(dir, 'lsblk'), 0o755);
  return { PATH: `${dir}:${process.env.PATH ?? ''}` };
}

function expectNothingChanged(r: RunResult, disk: LoopDisk, before: { part: number; df: number }): void {
  expect(partitionBytes(disk)).toBe(before.part);
  expect(dfBytes(mountPointOf(disk)).size).toBe(before.df);
  expect(r.lastJson?.actions).toEqual([]);
}

beforeAll(() => {
  doc = synthesizeCommandDocument('ExpandVolume');
  work = mkdtempSync(join(tmpdir(), 'grow-fs-test-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('Host-ExpandVolume document parameters', () => {
  const marker = `/tmp/pwned-grow-${process.pid}`;
  const hostile = [
    '; rm -rf /',
    `$(touch ${marker})`,
    `\`touch ${marker}\``,
    `/data\ntouch ${marker}`,
    '/data\n',
    '/data/../etc',
    '..',
    '/..',
    '/data/.',
    '/data dir',
    '',
    'data',
    '/data/',
    '//data',
    `/data;touch${marker}`,
  ];

  it.each(hostile)('rejects MountPoint %j before anything runs', async (value) => {
    await expect(grow(value)).rejects.toBeInstanceOf(ParameterValidationError);
    expect(existsSync(marker)).toBe(false);
  });

  it.each([
    `vol-0123456789abcdef0; touch ${marker}`,
    `$(touch ${marker})`,
    `\`touch ${marker}\``,
    'vol-0123456789abcdef0\n',
    ' vol-0123456789abcdef0',
    'vol-XYZ',
    '..',
  ])('rejects VolumeId %j before anything runs', async (value) => {
    await expect(grow('/data', { VolumeId: value })).rejects.toThrow(/VolumeId: .* fails allowedPattern/);
    expect(existsSync(marker)).toBe(false);
  });

  it.each(['yes', 'TRUE', '', `true; touch ${marker}`, `$(touch ${marker})`, 'true\n'])(
    'rejects DryRun %j before anything runs',
    async (value) => {
      await expect(grow('/data', { DryRun: value })).rejects.toThrow(/DryRun: .* is not one of/);
      expect(existsSync(marker)).toBe(false);
    },
  );

  it.each(['/', '/data', '/var/lib/stemedb', '/mnt/.hidden', '/mnt/a..b', '/mnt/...', '/x_y-z.1'])(
    'accepts the mount point %j',
    (value) => {
      const pattern = doc.parameters?.MountPoint?.allowedPattern ?? '';
      expect(new RegExp(pattern).test(value)).toBe(true);
    },
  );

  it('the script itself refuses a hostile MountPoint when run without the document (exit 2)', () => {
    const script = join(work, 'grow-direct.sh');
    writeFileSync(script, `${doc.mainSteps[0]?.inputs.runCommand.join('\n')}\n`);
    const r = spawnSync('bash', [script], {
      env: { ...process.env, SSM_MountPoint: `/data/../$(touch ${marker})`, SSM_DryRun: 'false' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/invalid MountPoint/);
    expect(existsSync(marker)).toBe(false);
  });
});

describe('Host-ExpandVolume on xfs', () => {
  const lab = new LoopDeviceLab('grow-xfs-');
  afterAll(() => lab.cleanup());

  it('grows a whole-disk xfs after the disk grows, keeping every file intact', async () => {
    const disk = lab.createDisk({ sizeMiB: 512, fs: 'xfs' });
    const mp = mountPointOf(disk);
    writeData(mp);
    const sums = checksumTree(mp);
    lab.growDisk(disk, 1024);

    const r = await grow(mp);

    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.lastJson).toMatchObject({
      status: 'grown',
      device: disk.device,
      disk: disk.device,
      partition: null,
      filesystem: 'xfs',
      actions: [`xfs_growfs ${mp}`],
    });
    expect(Number(r.lastJson?.sizeAfterBytes)).toBeGreaterThan(Number(r.lastJson?.sizeBeforeBytes));
    expect(dfBytes(mp).size).toBe(r.lastJson?.sizeAfterBytes);
    expect(checksumTree(mp)).toEqual(sums);
  });

  describe('in a GPT partition filled to 100%', () => {
    let disk: LoopDisk;
    let sums: Record<string, string>;
    let first: RunResult;

    beforeAll(async () => {
      disk = lab.createDisk({ sizeMiB: 1024, table: 'gpt', fs: 'xfs' });
      writeData(mountPointOf(disk));
      sums = checksumTree(mountPointOf(disk), skipFill);
      const fill = lab.fill(mountPointOf(disk));
      expect(fill.usedPercent).toBe(100);
      lab.growDisk(disk, 2048);
      first = await grow(mountPointOf(disk));
    });

    it('grows the partition with growpart and the filesystem with xfs_growfs', () => {
      expect(first.exitCode, first.stderr).toBe(0);
      expect(first.lastJson).toMatchObject({
        status: 'grown',
        device: disk.partition,
        disk: disk.device,
        partition: 1,
        partitionTable: 'gpt',
        filesystem: 'xfs',
        actions: [`growpart ${disk.device} 1`, `xfs_growfs ${mountPointOf(disk)}`],
      });
      expect(partitionBytes(disk)).toBeGreaterThan(2000 * 1024 * 1024);
      expect(dfBytes(mountPointOf(disk)).usedPercent).toBeLessThan(55);
    });

    it('keeps every data file byte for byte', () => {
      expect(checksumTree(mountPointOf(disk), skipFill)).toEqual(sums);
    });

    it('says there is nothing to grow on a second run and succeeds', async () => {
      const again = await grow(mountPointOf(disk));
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.lastJson).toMatchObject({ status: 'nothing-to-grow', actions: [] });
      expect(again.lastJson?.sizeAfterBytes).toBe(again.lastJson?.sizeBeforeBytes);
    });
  });

  describe('refusals that change nothing', () => {
    let disk: LoopDisk;
    let before: { part: number; df: number };
    let sums: Record<string, string>;

    beforeAll(() => {
      disk = lab.createDisk({ sizeMiB: 1024, table: 'gpt', fs: 'xfs' });
      writeData(mountPointOf(disk));
      sums = checksumTree(mountPointOf(disk));
      lab.growDisk(disk, 1536);
      before = { part: partitionBytes(disk), df: dfBytes(mountPointOf(disk)).size };
    });
    afterEach(() => {
      expect(checksumTree(mountPointOf(disk))).toEqual(sums);
    });

    it('DryRun reports the plan and changes nothing', async () => {
      const r = await grow(mountPointOf(disk), { DryRun: 'true' });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.lastJson).toMatchObject({ status: 'dry-run', dryRun: true });
      expect(r.lastJson?.actions).toEqual([
        expect.stringMatching(/^would run: growpart /),
        expect.stringMatching(/^would run: xfs_growfs /),
      ]);
      expect(partitionBytes(disk)).toBe(before.part);
      expect(dfBytes(mountPointOf(disk)).size).toBe(before.df);
    });

    it('refuses a VolumeId on a loop device, which has no serial to match', async () => {
      const r = await grow(mountPointOf(disk), { VolumeId: 'vol-0123456789abcdef0' });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toMatch(/VolumeId vol-0123456789abcdef0 given but .* reports no serial/);
      expect(r.lastJson).toMatchObject({ status: 'refused', serial: null });
      expectNothingChanged(r, disk, before);
    });

    it('refuses a VolumeId that does not match the disk serial', async () => {
      const env = lsblkStandIn('serial-other', disk.device, { serial: 'vol0fedcba9876543210' });
      const r = await grow(mountPointOf(disk), { VolumeId: 'vol-0123456789abcdef0' }, env);
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toMatch(
        /VolumeId mismatch: .* has serial vol0fedcba9876543210, expected vol0123456789abcdef0/,
      );
      expectNothingChanged(r, disk, before);
    });

    it('refuses a filesystem on LVM and says pvresize/lvextend is not supported', async () => {
      const env = lsblkStandIn('lvm', disk.partition ?? '', { type: 'lvm' });
      const r = await grow(mountPointOf(disk), {}, env);
      expect(r.exitCode).toBe(3);
      expect(r.stderr.trim().split('\n').pop()).toMatch(/LVM .*pvresize\/lvextend\) is not supported/);
      expectNothingChanged(r, disk, before);
    });

    // Runs last in this block: it grows the disk.
    it('proceeds when the VolumeId matches the disk serial', async () => {
      const env = lsblkStandIn('serial-same', disk.device, { serial: 'vol0123456789abcdef0' });
      const r = await grow(mountPointOf(disk), { VolumeId: 'vol-0123456789abcdef0' }, env);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.lastJson).toMatchObject({ status: 'grown', serial: 'vol0123456789abcdef0' });
    });
  });

  it('refuses a directory that is not a mount point', async () => {
    const dir = join(work, 'plain-dir');
    mkdirSync(dir, { recursive: true });
    const r = await grow(dir);
    expect(r.exitCode).toBe(3);
    expect(r.stderr.trim()).toMatch(
      /^expand-volume: .*plain-dir is not a mount point \(nothing was changed\)$/,
    );
    expect(r.lastJson).toMatchObject({ status: 'refused', actions: [] });
  });

  it('refuses an unknown filesystem (ext2) without changing it', async () => {
    const disk = lab.createDisk({ sizeMiB: 64, fs: 'none' });
    execFileSync('mkfs.ext2', ['-q', '-F', disk.device]);
    const mp = lab.mount(disk);
    lab.growDisk(disk, 128);
    const before = dfBytes(mp).size;
    const r = await grow(mp);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/filesystem ext2 on .* is not supported \(xfs and ext4 are\)/);
    expect(dfBytes(mp).size).toBe(before);
  });

  it('stops at the 2 TiB MBR limit and says so instead of failing obscurely', async () => {
    // A 3 TiB sparse disk whose MBR partition already ends at the 2^32-sector limit.
    const disk = lab.createDisk({ sizeMiB: 3 * 1024 * 1024, fs: 'none' });
    execFileSync('sfdisk', ['-q', '--no-reread', disk.device], {
      input: `label: dos\nstart=2048, size=${2 ** 32 - 1 - 2048}, type=83\n`,
    });
    lab.rescanPartitions(disk.device);
    const part = `${disk.device}p1`;
    execFileSync('mkfs.xfs', ['-q', '-f', '-K', '-l', 'size=64m', part]);
    const mp = lab.mount({ ...disk, partition: part, fsDevice: part });
    const r = await grow(mp);
    expect(r.exitCode).toBe(3);
    expect(r.lastJson?.reason).toMatch(/MBR \(dos\) partition table .* limits partitions to 2 TiB/);
    expect(r.lastJson?.actions).toEqual([]);
  });
});

describe('Host-ExpandVolume on ext4 in an MBR partition', () => {
  const lab = new LoopDeviceLab('grow-ext4-');
  let disk: LoopDisk;
  let sums: Record<string, string>;
  let before: { part: number; df: number };
  afterAll(() => lab.cleanup());

  beforeAll(() => {
    disk = lab.createDisk({ sizeMiB: 256, table: 'mbr', partitionMiB: 128, fs: 'ext4' });
    writeData(mountPointOf(disk));
    sums = checksumTree(mountPointOf(disk));
    before = { part: partitionBytes(disk), df: dfBytes(mountPointOf(disk)).size };
  });

  // Without CAP_SYS_RESOURCE (this sandbox) the dry run ends with the same refusal the real run
  // would give, after listing the plan; with it, the dry run succeeds. Either way nothing changes.
  it('reports the plan for the MBR partition and resize2fs in a dry run', async () => {
    const r = await grow(mountPointOf(disk), { DryRun: 'true' });
    expect(r.exitCode, r.stderr).toBe(hasCapSysResource() ? 0 : 3);
    expect(r.lastJson).toMatchObject({
      status: hasCapSysResource() ? 'dry-run' : 'refused',
      dryRun: true,
      partitionTable: 'dos',
      filesystem: 'ext4',
    });
    expect(r.lastJson?.actions).toEqual([
      expect.stringMatching(
        new RegExp(`^would run: growpart ${disk.device} 1 \\(partition to \\d+ bytes\\)$`),
      ),
      expect.stringMatching(new RegExp(`^would run: resize2fs ${disk.partition} `)),
    ]);
    expect(partitionBytes(disk)).toBe(before.part);
    expect(dfBytes(mountPointOf(disk)).size).toBe(before.df);
  });

  // Online ext4 growth needs CAP_SYS_RESOURCE, which this sandbox (and CI here) does not grant:
  // the kernel answers resize2fs with "Permission denied". The script checks the capability
  // first and refuses before growpart, so nothing changes. On a host with the capability (a
  // real EC2 instance) the same call grows the filesystem; the test accepts either, by capability.
  it('on a mounted ext4 either grows it or, without CAP_SYS_RESOURCE, refuses clearly and damages nothing', async () => {
    const r = await grow(mountPointOf(disk));
    if (hasCapSysResource()) {
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.lastJson).toMatchObject({ status: 'grown' });
    } else {
      expect(r.exitCode).toBe(3);
      expect(r.stderr.trim()).toMatch(
        /online ext4 resize of .* needs CAP_SYS_RESOURCE.*\(nothing was changed\)$/,
      );
      expectNothingChanged(r, disk, before);
    }
    expect(checksumTree(mountPointOf(disk))).toEqual(sums);
  });

  // Offline growth, through the script's own functions. The document always works on a mounted
  // filesystem (MountPoint is required), so the offline path cannot go through main. Instead the
  // test sources the script text taken from the synthesized document (main runs only when the
  // file is executed, not sourced) on an unmounted ext4 and calls the same grow_partition and
  // resize_filesystem functions main calls. Offline resize2fs needs a fresh e2fsck -f first.
  it('grows the MBR partition and ext4 offline with the script functions, data intact', () => {
    lab.unmount(disk);
    const script = join(work, 'grow-source.sh');
    writeFileSync(script, `${doc.mainSteps[0]?.inputs.runCommand.join('\n')}\n`);
    const out = execFileSync(
      'bash',
      [
        '-c',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash array expansion, not a template
        'source "$1"; grow_partition "$2" 1; e2fsck -f -y "$3" >&2; resize_filesystem ext4 "$3" ""; printf "%s\\n" "${ACTIONS[@]}"',
        '_',
        script,
        disk.device,
        disk.fsDevice,
      ],
      { encoding: 'utf8', env: { ...process.env, TMPDIR: '/dev/shm' } },
    );
    expect(out.trim().split('\n')).toEqual([`growpart ${disk.device} 1`, `resize2fs ${disk.fsDevice}`]);
    expect(partitionBytes(disk)).toBeGreaterThan(250 * 1024 * 1024);
    const mp = lab.mount(disk);
    expect(dfBytes(mp).size).toBeGreaterThan(before.df * 1.8);
    expect(checksumTree(mp)).toEqual(sums);
  });

  it('on the grown ext4, a second run says nothing to grow even without CAP_SYS_RESOURCE', async () => {
    const r = await grow(mountPointOf(disk));
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.lastJson).toMatchObject({ status: 'nothing-to-grow', actions: [] });
  });
});

describe('Host-ExpandVolume on ext4 without the 64bit feature', () => {
  const lab = new LoopDeviceLab('grow-ext4-32-');
  afterAll(() => lab.cleanup());

  it('plans growth only up to the 2^32-block limit and names it (dry run)', async () => {
    // 1 KiB blocks put the 32-bit limit at 4 TiB, so a 5 TiB sparse disk crosses it (with 4 KiB
    // blocks the limit is the 16 TiB of the runbook; the check is the same: 2^32 blocks).
    const disk = lab.createDisk({ sizeMiB: 64, fs: 'ext4', mkfsArgs: ['-b', '1024', '-O', '^64bit'] });
    lab.growDisk(disk, 5 * 1024 * 1024);
    const r = await grow(mountPointOf(disk), { DryRun: 'true' });
    expect(r.exitCode, r.stderr).toBe(hasCapSysResource() ? 0 : 3);
    expect(r.lastJson?.warnings).toEqual([
      expect.stringMatching(/ext4 on .* lacks the 64bit feature and cannot exceed 4398046510080 bytes/),
    ]);
    expect(r.lastJson?.actions).toEqual([
      `would run: resize2fs ${disk.device} 4294967295 (to about 4398046510080 bytes)`,
    ]);
  });
});
