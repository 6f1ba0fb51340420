import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

/**
 * Real block devices for tests: sparse image files attached as loop devices, optionally
 * partitioned (GPT or MBR), formatted (xfs or ext4) and mounted, which tests can fill to 100%
 * and grow like an EBS volume. Needs root (the tests run as root here and in CI).
 *
 * Every resource is tracked and `cleanup()` releases all of them, newest first, even when a
 * test failed half-way; call it from `afterAll`/`afterEach`. It never touches anything it did
 * not create.
 *
 * ```ts
 * const lab = new LoopDeviceLab();
 * afterAll(() => lab.cleanup());
 * const disk = lab.createDisk({ sizeMiB: 1024, table: 'gpt', partitionMiB: 512, fs: 'xfs', mount: true });
 * lab.fill(disk.mountPoint);                // 100% full
 * lab.growDisk(disk, 2048);                 // the "EBS modification"
 * ```
 */

export type PartitionTable = 'gpt' | 'mbr' | 'none';
export type FsType = 'xfs' | 'ext4' | 'none';

export interface DiskOptions {
  /** Size of the image (and so of the loop device) in MiB. xfs needs a filesystem > 300 MiB. */
  readonly sizeMiB: number;
  /** @default 'none' (a whole-disk filesystem) */
  readonly table?: PartitionTable;
  /** Size of partition 1 in MiB (starts at 1 MiB). @default the rest of the disk */
  readonly partitionMiB?: number;
  /** @default 'xfs' */
  readonly fs?: FsType;
  /** Extra arguments for mkfs (e.g. `['-O', '^64bit']` for ext4). */
  readonly mkfsArgs?: readonly string[];
  /** Mount the filesystem under a temp directory. @default true when fs is not 'none' */
  readonly mount?: boolean;
}

export interface LoopDisk {
  /** The sparse backing file. */
  readonly image: string;
  /** `/dev/loopN`: the whole "disk". */
  readonly device: string;
  /** `/dev/loopNp1` when partitioned. */
  readonly partition: string | undefined;
  /** The device holding the filesystem: the partition, or the whole disk. */
  readonly fsDevice: string;
  readonly fs: FsType;
  /** Where it is mounted (undefined when not mounted). */
  mountPoint: string | undefined;
}

export interface FillResult {
  readonly files: readonly string[];
  readonly availBytes: number;
  readonly usedPercent: number;
}

const MiB = 1024 * 1024;

/** Runs a command, throwing with its stderr on failure; returns stdout. */
export function sh(cmd: string, args: readonly string[], input?: string): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** `df` figures of a mounted filesystem, in bytes. */
export function dfBytes(mountPoint: string): {
  size: number;
  used: number;
  avail: number;
  usedPercent: number;
} {
  const out = sh('df', ['-B1', '--output=size,used,avail,pcent', mountPoint]).trim().split('\n')[1] ?? '';
  const [size, used, avail, pcent] = out.trim().split(/\s+/);
  return {
    size: Number(size),
    used: Number(used),
    avail: Number(avail),
    usedPercent: Number((pcent ?? '').replace('%', '')),
  };
}

/** sha256 of every regular file under `dir` (relative path → hex), skipping `skip` matches. */
export function checksumTree(
  dir: string,
  skip: (relPath: string) => boolean = () => false,
): Record<string, string> {
  const sums: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      const rel = relative(dir, full);
      if (skip(rel)) continue;
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) sums[rel] = createHash('sha256').update(readFileSync(full)).digest('hex');
    }
  };
  walk(dir);
  return sums;
}

/** True when `path` is a mount point right now. */
export function isMounted(path: string): boolean {
  return spawnSync('findmnt', ['-n', '--mountpoint', path], { stdio: 'ignore' }).status === 0;
}

/** Labs with resources still held: released on process exit if a test run dies before afterAll. */
const liveLabs = new Set<LoopDeviceLab>();
let exitHookInstalled = false;
function releaseOnExit(lab: LoopDeviceLab): void {
  liveLabs.add(lab);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const l of liveLabs) {
      try {
        l.cleanup();
      } catch {
        // best effort at exit
      }
    }
  });
}

export class LoopDeviceLab {
  private readonly prefix: string;
  private rootDir: string | undefined;
  private readonly devices: string[] = [];
  private readonly mounts: string[] = [];

  /** Creates nothing yet: constructing a lab at test collection time is free. */
  constructor(prefix = 'loop-lab-') {
    this.prefix = prefix;
  }

  /** Temp directory holding the images and the mount points (made on first use). */
  get root(): string {
    if (this.rootDir === undefined) {
      this.rootDir = mkdtempSync(join(tmpdir(), this.prefix));
      releaseOnExit(this);
    }
    return this.rootDir;
  }

  /** Creates, attaches, partitions, formats and (by default) mounts a new disk. */
  createDisk(opts: DiskOptions): LoopDisk {
    const table = opts.table ?? 'none';
    const fs = opts.fs ?? 'xfs';
    const image = join(this.root, `disk${this.devices.length}.img`);
    sh('truncate', ['-s', `${opts.sizeMiB}M`, image]);
    const device = sh('losetup', ['-fP', '--show', image]).trim();
    this.devices.push(device);

    let partition: string | undefined;
    if (table !== 'none') {
      const size = opts.partitionMiB !== undefined ? `size=${opts.partitionMiB * 2048}, ` : '';
      const type = table === 'gpt' ? 'linux' : '83';
      const label = table === 'gpt' ? 'gpt' : 'dos';
      sh('sfdisk', ['-q', '--no-reread', device], `label: ${label}\nstart=2048, ${size}type=${type}\n`);
      this.rescanPartitions(device);
      partition = `${device}p1`;
    }
    const fsDevice = partition ?? device;
    if (fs === 'xfs') sh('mkfs.xfs', ['-q', '-f', ...(opts.mkfsArgs ?? []), fsDevice]);
    if (fs === 'ext4') sh('mkfs.ext4', ['-q', '-F', ...(opts.mkfsArgs ?? []), fsDevice]);

    const disk: LoopDisk = { image, device, partition, fsDevice, fs, mountPoint: undefined };
    if (fs !== 'none' && opts.mount !== false) this.mount(disk);
    return disk;
  }

  /** Makes the kernel re-read the partition table (and create `/dev/loopNpM`). */
  rescanPartitions(device: string): void {
    // `partx -u` updates existing entries; `-a` adds new ones (it fails harmlessly when present).
    spawnSync('partx', ['-a', device], { stdio: 'ignore' });
    sh('partx', ['-u', device]);
    if (!existsSync(`${device}p1`)) throw new Error(`${device}p1 did not appear after partx`);
  }

  /** Mounts the disk's filesystem at `dir` (default: a new directory under the lab root). */
  mount(disk: LoopDisk, dir?: string): string {
    const mountPoint = dir ?? join(this.root, `mnt${this.mounts.length}`);
    mkdirSync(mountPoint, { recursive: true });
    sh('mount', [disk.fsDevice, mountPoint]);
    this.mounts.push(mountPoint);
    disk.mountPoint = mountPoint;
    return mountPoint;
  }

  /** Unmounts the disk (keeps it attached). */
  unmount(disk: LoopDisk): void {
    if (disk.mountPoint === undefined) return;
    sh('umount', [disk.mountPoint]);
    disk.mountPoint = undefined;
  }

  /**
   * Fills the filesystem at `mountPoint` to 100%: one preallocated file (cheap, no data written),
   * then small writes until ENOSPC. Files are named `.fill-*` so checksums can skip them.
   */
  fill(mountPoint: string): FillResult {
    const files: string[] = [];
    const big = join(mountPoint, '.fill-0');
    const avail = dfBytes(mountPoint).avail;
    const margin = 8 * MiB;
    if (avail > margin) {
      sh('fallocate', ['-l', String(avail - margin), big]);
      files.push(big);
    }
    for (const [i, bs] of ['1M', '64K', '4K'].entries()) {
      const file = join(mountPoint, `.fill-${i + 1}`);
      // dd exits non-zero at ENOSPC, which is the point.
      spawnSync('dd', ['if=/dev/zero', `of=${file}`, `bs=${bs}`, 'status=none'], { stdio: 'ignore' });
      if (existsSync(file)) files.push(file);
    }
    spawnSync('sync', [mountPoint], { stdio: 'ignore' });
    const df = dfBytes(mountPoint);
    return { files, availBytes: df.avail, usedPercent: df.usedPercent };
  }

  /** Grows the backing file to `newSizeMiB` and tells the loop driver (`losetup -c`): EBS growth. */
  growDisk(disk: LoopDisk, newSizeMiB: number): void {
    const current = statSync(disk.image).size;
    if (newSizeMiB * MiB <= current)
      throw new Error(`growDisk: ${newSizeMiB} MiB is not larger than the disk`);
    sh('truncate', ['-s', `${newSizeMiB}M`, disk.image]);
    sh('losetup', ['-c', disk.device]);
  }

  /** Size of a block device in bytes, as the kernel sees it now. */
  deviceBytes(device: string): number {
    return Number(sh('blockdev', ['--getsize64', device]).trim());
  }

  /** Unmounts and detaches everything this lab created, newest first; removes the temp dir. */
  cleanup(): void {
    const errors: string[] = [];
    for (const mountPoint of this.mounts.reverse()) {
      if (!isMounted(mountPoint)) continue;
      const r = spawnSync('umount', [mountPoint], { encoding: 'utf8' });
      if (r.status !== 0) {
        const lazy = spawnSync('umount', ['-l', mountPoint], { encoding: 'utf8' });
        if (lazy.status !== 0) errors.push(`umount ${mountPoint}: ${r.stderr.trim()}`);
      }
    }
    this.mounts.length = 0;
    for (const device of this.devices.reverse()) {
      const r = spawnSync('losetup', ['-d', device], { encoding: 'utf8' });
      if (r.status !== 0 && !/No such device/.test(r.stderr))
        errors.push(`losetup -d ${device}: ${r.stderr.trim()}`);
    }
    this.devices.length = 0;
    if (this.rootDir !== undefined) rmSync(this.rootDir, { recursive: true, force: true });
    this.rootDir = undefined;
    liveLabs.delete(this);
    if (errors.length > 0) throw new Error(`LoopDeviceLab cleanup: ${errors.join('; ')}`);
  }
}
