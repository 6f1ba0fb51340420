import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmdirSync,
  statfsSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { DescribeAlarmsCommand, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeVolumesCommand, type Volume } from '@aws-sdk/client-ec2';
import type { CommandDocumentContent } from '../../lib/command-document';
import type { Principal } from '../support/automation-runner';
import { runCommandDocument } from '../support/command-document-runner';
import { createFakeSystemd, type FakeSystemd } from '../support/fake-systemd';
import {
  dfBytes,
  type FsType,
  isMounted,
  type LoopDeviceLab,
  type LoopDisk,
  sh,
} from '../support/loop-device';
import { standinCommand } from '../support/stemedb-standin';
import type { MotoClients } from './moto-account';

/**
 * The StemeDB node the drill heals: this machine, as the instance the documents target.
 *
 * - Its data volume is a loop device (xfs or ext4, sparse image) mounted at the configured data
 *   mount, holding `wal/` and `db/`. The EBS volume behind it lives in moto; when moto's volume
 *   grows (ModifyVolume), {@link NodeHost.followEbs} grows the image and tells the loop driver, as
 *   EBS grows a disk under a running instance. It runs before every host command, the moment the
 *   agent on a real instance would first see the new size.
 * - A volume attached to the instance in moto (AttachVolume, as AddDataVolume does) appears as a
 *   new blank loop disk of the volume's size, the moment the agent would first see it (also in
 *   {@link NodeHost.followEbs}). A volume that grows later grows its own disk.
 * - Every disk reports its EBS volume ID as its serial, as an NVMe EBS disk does (`vol0123…`): a
 *   loop device has no serial, so an `lsblk` shim first on the agent's PATH answers `SERIAL` for
 *   the drill's loop disks and runs the real `lsblk` for everything else. Nothing in the scripts
 *   changes: MigrateDataVolume finds the new disk by its volume ID, the host half of ExpandVolume (expand-volume.sh) checks the
 *   data mount's disk against the registry's volume, whichever disk that is now.
 * - The database is the StemeDB stand-in under the fake systemd (`systemctl`/`journalctl` first
 *   on PATH), unit `serviceName`, answering on the configured health URL.
 * - The SSM agent: {@link NodeHost.runAsAgent} runs a synthesized Command document as the agent
 *   does (parameters checked against their patterns, `SSM_<Name>` environment) with the instance
 *   role's credentials, so every AWS call of a host script is made as that role.
 * - The CloudWatch agent: {@link NodeHost.publishDiskMetrics} puts the data mount's disk figures
 *   into the node's own namespace as the instance role, as the agent configured by the stack does
 *   every minute.
 */

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface NodeHostOptions {
  readonly lab: LoopDeviceLab;
  readonly dataMount: string;
  readonly walDir: string;
  readonly dbDir: string;
  readonly backupDir: string;
  readonly serviceName: string;
  readonly port: number;
  readonly instanceId: string;
  readonly volumeId: string;
  readonly instanceRole: Principal;
  readonly instanceRoleName: string;
  readonly motoEndpoint: string;
  readonly region: string;
  /** The administrator's clients, for what EBS itself would know (the volume's size). */
  readonly admin: MotoClients;
  /** Clients signed as the instance role (the CloudWatch agent's calls). */
  readonly asInstance: MotoClients;
}

export interface DiskSpec {
  readonly fs: FsType;
  readonly sizeGiB: number;
  /** mkfs options, e.g. ext4 `-N 2048` for few inodes. */
  readonly mkfsArgs?: readonly string[];
}

export interface DiskFigures {
  readonly sizeBytes: number;
  readonly availBytes: number;
  readonly usedPercent: number;
  readonly inodesFree: number;
  readonly inodesTotal: number;
}

/** The data mount's df figures (bytes and inodes). */
export function diskFigures(mountPoint: string): DiskFigures {
  const df = dfBytes(mountPoint);
  const s = statfsSync(mountPoint);
  return {
    sizeBytes: df.size,
    availBytes: df.avail,
    usedPercent: df.usedPercent,
    inodesFree: Number(s.ffree),
    inodesTotal: Number(s.files),
  };
}

/** Writes a file of `bytes` real bytes (not sparse: it must use the disk) with mtime `ageDays` ago. */
export function writeAged(path: string, bytes: number, ageDays: number): void {
  const fd = openSync(path, 'wx');
  try {
    const chunk = Buffer.alloc(Math.min(bytes, MiB), 0x5a);
    chunk.write(path);
    for (let done = 0; done < bytes; done += chunk.length)
      writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - done));
  } finally {
    closeSync(fd);
  }
  const t = new Date(Date.now() - ageDays * 86_400_000);
  utimesSync(path, t, t);
}

/** What {@link NodeHost.followEbs} did: a volume attached (a new disk), or a volume that grew. */
export type EbsChange =
  | {
      readonly kind: 'attached';
      readonly volumeId: string;
      readonly sizeGiB: number;
      readonly device: string;
    }
  | {
      readonly kind: 'grown';
      readonly volumeId: string;
      readonly fromGiB: number;
      readonly toGiB: number;
      readonly device: string;
    };

/** A disk of the host: the loop device behind one EBS volume attached to the instance. */
interface HostDisk {
  readonly volumeId: string;
  readonly disk: LoopDisk;
  bytes: number;
}

/** MigrateDataVolume's default staging mount point (the Automation does not pass StagingDir). */
export const MIGRATION_STAGING_DIR = '/mnt/stemedb-migrate';

export class NodeHost {
  /** By volume ID: the provisioned data volume first, then every volume attached later. */
  private readonly disks = new Map<string, HostDisk>();
  /** Volumes attached before the drill began but the data volume (the instance's root volume: this machine's root disk). */
  private readonly notFollowed = new Set<string>();
  private systemd: FakeSystemd | undefined;
  private shimDir = '';
  private stagingExisted = true;

  constructor(private readonly opts: NodeHostOptions) {}

  get instanceRoleName(): string {
    return this.opts.instanceRoleName;
  }

  /** The loop device behind an EBS volume of this host. */
  deviceOf(volumeId: string): string {
    const d = this.disks.get(volumeId);
    if (d === undefined) throw new Error(`NodeHost: volume ${volumeId} is not attached to this host`);
    return d.disk.device;
  }

  /** The EBS volume whose disk is mounted at the data mount now (findmnt), or undefined. */
  dataVolumeId(): string | undefined {
    const source = mountSource(this.opts.dataMount);
    return [...this.disks.values()].find((d) => d.disk.device === source)?.volumeId;
  }

  /** Creates the data volume's disk, mounts it at the data mount, makes wal/ and db/, starts the service. */
  async provision(spec: DiskSpec): Promise<void> {
    const o = this.opts;
    const disk = o.lab.createDisk({
      sizeMiB: spec.sizeGiB * 1024,
      fs: spec.fs,
      mkfsArgs: spec.mkfsArgs,
      mount: false,
    });
    o.lab.mount(disk, o.dataMount);
    this.disks.set(o.volumeId, { volumeId: o.volumeId, disk, bytes: spec.sizeGiB * GiB });
    for (const d of [o.walDir, o.dbDir, o.backupDir]) mkdirSync(d, { recursive: true });
    this.stagingExisted = existsSync(MIGRATION_STAGING_DIR);
    for (const v of await this.attachedVolumes())
      if (v.VolumeId !== undefined && v.VolumeId !== o.volumeId) this.notFollowed.add(v.VolumeId);

    this.shimDir = join(o.lab.root, `shim-${Date.now()}`);
    mkdirSync(this.shimDir);
    this.writeSerialShim();

    const { command, workingDirectory } = standinCommand({
      port: o.port,
      dataDir: o.dataMount,
      walDir: o.walDir,
      compactionMs: 500,
    });
    this.systemd = createFakeSystemd({ [o.serviceName]: { command, workingDirectory, startCheckMs: 300 } });
    const started = await this.systemd.systemctl('start', o.serviceName);
    if (started.code !== 0) throw new Error(`systemctl start ${o.serviceName}: ${started.stderr}`);
    await this.waitHealthy(15_000);
  }

  private async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`http://127.0.0.1:${this.opts.port}/v1/health`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `the StemeDB stand-in did not answer health on port ${this.opts.port} within ${timeoutMs} ms`,
    );
  }

  /**
   * A fault for the next run of `command` on the agent's PATH: it exits 1 with `message` once,
   * then the real command runs again (a shim first on PATH removes itself after firing).
   */
  injectFault(command: string, message: string): void {
    const real = spawnSync('bash', ['-c', `command -v ${command}`], { encoding: 'utf8' }).stdout.trim();
    if (real === '') throw new Error(`injectFault: ${command} is not installed`);
    const shim = join(this.shimDir, command);
    writeFileSync(
      shim,
      [
        '#!/usr/bin/env bash',
        `rm -f -- "$0"`,
        `echo ${JSON.stringify(`${command}: ${message}`)} >&2`,
        'exit 1',
        '',
      ].join('\n'),
    );
    chmodSync(shim, 0o755);
  }

  /** PATH of the agent: the lsblk shim, then systemctl/journalctl, then the system's. */
  agentPath(): string {
    return `${this.shimDir}:${this.systemd?.binDir ?? ''}:${process.env.PATH ?? ''}`;
  }

  /** Environment of a process acting as the instance role (the agent's, the host scripts'). */
  instanceEnv(): Record<string, string> {
    const c = this.opts.instanceRole.credentials;
    return {
      AWS_ACCESS_KEY_ID: c.accessKeyId,
      AWS_SECRET_ACCESS_KEY: c.secretAccessKey,
      AWS_SESSION_TOKEN: c.sessionToken ?? '',
      AWS_REGION: this.opts.region,
      AWS_DEFAULT_REGION: this.opts.region,
      AWS_ENDPOINT_URL: this.opts.motoEndpoint,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_PAGER: '',
      PATH: this.agentPath(),
    };
  }

  /** The `lsblk` shim: each drill disk answers `SERIAL` with its volume ID without the dash. */
  private writeSerialShim(): void {
    const cases = [...this.disks.values()].map(
      (d) => `    *" ${d.disk.device} "*) echo ${d.volumeId.replace('-', '')}; exit 0 ;;`,
    );
    const shim = join(this.shimDir, 'lsblk');
    writeFileSync(
      shim,
      [
        '#!/usr/bin/env bash',
        "# The drill's disks report their EBS volume IDs as serial, as EBS NVMe disks do.",
        'if [[ " $* " == *" SERIAL "* ]]; then',
        '  case " $* " in',
        ...cases,
        '  esac',
        'fi',
        'exec /usr/bin/lsblk "$@"',
        '',
      ].join('\n'),
    );
    chmodSync(shim, 0o755);
  }

  /**
   * EBS under the running instance, as moto shows it: a volume newly attached to the instance
   * becomes a new blank disk of its size (with its serial); a volume larger than its disk grows the
   * disk (image + `losetup -c`). The instance's root volume is not followed (this machine's root
   * disk stands for it), nor is detaching (no scenario detaches a volume).
   */
  async followEbs(): Promise<EbsChange[]> {
    const changes: EbsChange[] = [];
    for (const v of await this.attachedVolumes()) {
      const volumeId = v.VolumeId ?? '';
      const sizeGiB = v.Size ?? 0;
      if (this.notFollowed.has(volumeId)) continue;
      const known = this.disks.get(volumeId);
      if (known === undefined) {
        const disk = this.opts.lab.createDisk({ sizeMiB: sizeGiB * 1024, fs: 'none', mount: false });
        this.disks.set(volumeId, { volumeId, disk, bytes: sizeGiB * GiB });
        this.writeSerialShim();
        changes.push({ kind: 'attached', volumeId, sizeGiB, device: disk.device });
      } else if (sizeGiB * GiB > known.bytes) {
        const fromGiB = known.bytes / GiB;
        this.opts.lab.growDisk(known.disk, sizeGiB * 1024);
        known.bytes = sizeGiB * GiB;
        changes.push({ kind: 'grown', volumeId, fromGiB, toGiB: sizeGiB, device: known.disk.device });
      }
    }
    return changes;
  }

  /** The volumes moto shows attached (or attaching) to the instance. */
  private async attachedVolumes(): Promise<Volume[]> {
    const out = await this.opts.admin.ec2.send(
      new DescribeVolumesCommand({
        Filters: [{ Name: 'attachment.instance-id', Values: [this.opts.instanceId] }],
      }),
    );
    return (out.Volumes ?? []).filter((v) =>
      (v.Attachments ?? []).some(
        (a) => a.InstanceId === this.opts.instanceId && (a.State === 'attached' || a.State === 'attaching'),
      ),
    );
  }

  /**
   * Runs `fn` with the filesystem of `volumeId`'s disk mounted read-only (xfs `norecovery`, ext4
   * `noload`: not even the log is replayed), then unmounts it. For checks of a disk no longer in use.
   */
  withReadOnlyMount<T>(volumeId: string, fn: (dir: string) => T): T {
    const device = this.deviceOf(volumeId);
    const type = sh('blkid', ['-p', '-o', 'value', '-s', 'TYPE', device]).trim();
    const options = type === 'xfs' ? 'ro,norecovery' : type === 'ext4' ? 'ro,noload' : '';
    if (options === '') throw new Error(`withReadOnlyMount: ${device} holds ${type || 'no filesystem'}`);
    const dir = mkdtempSync(join(this.opts.lab.root, 'ro-'));
    sh('mount', ['-t', type, '-o', options, device, dir]);
    try {
      return fn(dir);
    } finally {
      sh('umount', [dir]);
      rmdirSync(dir);
    }
  }

  /**
   * The CloudWatch agent's datapoints for the data mount (dimensions InstanceId + path), as the
   * instance role, into the node's own namespace: the one the stack's alarms on this instance read
   * (read from the deployed alarms, as the agent reads it from its synthesized configuration).
   */
  async publishDiskMetrics(): Promise<void> {
    const namespaces = new Set<string>();
    let NextToken: string | undefined;
    do {
      const page = await this.opts.admin.cloudwatch.send(new DescribeAlarmsCommand({ NextToken }));
      for (const a of page.MetricAlarms ?? []) {
        const metrics = [
          { Namespace: a.Namespace, Dimensions: a.Dimensions },
          ...(a.Metrics ?? []).map((m) => m.MetricStat?.Metric ?? {}),
        ];
        for (const m of metrics) {
          if (m.Dimensions?.some((d) => d.Name === 'InstanceId' && d.Value === this.opts.instanceId))
            if (m.Namespace !== undefined) namespaces.add(m.Namespace);
        }
      }
      NextToken = page.NextToken;
    } while (NextToken);
    const [namespace, ...more] = [...namespaces];
    if (namespace === undefined || more.length > 0)
      throw new Error(
        `publishDiskMetrics: the alarms on ${this.opts.instanceId} read ${namespaces.size === 0 ? 'no namespace' : [...namespaces].join(', ')}; expected exactly one`,
      );
    const f = diskFigures(this.opts.dataMount);
    const dims = [
      { Name: 'InstanceId', Value: this.opts.instanceId },
      { Name: 'path', Value: this.opts.dataMount },
    ];
    const now = new Date();
    const datum = (MetricName: string, Value: number, Unit: 'Bytes' | 'Percent' | 'None') => ({
      MetricName,
      Value,
      Unit,
      Dimensions: dims,
      Timestamp: now,
    });
    await this.opts.asInstance.cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: namespace,
        MetricData: [
          datum('disk_free', f.availBytes, 'Bytes'),
          datum('disk_total', f.sizeBytes, 'Bytes'),
          datum('disk_used_percent', f.usedPercent, 'Percent'),
          datum('disk_inodes_free', f.inodesFree, 'None'),
          datum('disk_inodes_total', f.inodesTotal, 'None'),
        ],
      }),
    );
  }

  /** Runs a synthesized Command document as the SSM agent would, as the instance role. */
  async runAsAgent(
    content: CommandDocumentContent,
    parameters: Readonly<Record<string, string>>,
    timeoutSeconds: number,
  ): Promise<{ exitCode: number; stdout: string; stderr: string; timedOut: boolean }> {
    const r = await runCommandDocument(content, parameters, {
      env: this.instanceEnv(),
      timeoutMs: timeoutSeconds * 1000,
    });
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut };
  }

  /**
   * Stops the service and unmounts every mount of the host's disks (the data mount, whichever disk
   * is on it, and a staging mount a migration left); removes the staging directory if the drill's
   * migration made it. The lab detaches the loop devices at its own cleanup.
   */
  async release(): Promise<void> {
    const systemd = this.systemd;
    this.systemd = undefined;
    if (systemd !== undefined) await systemd.cleanup();
    const errors: string[] = [];
    for (const d of this.disks.values()) {
      for (const target of mountsOf(d.disk.device).reverse()) {
        const r = spawnSync('umount', [target], { encoding: 'utf8' });
        if (r.status !== 0) errors.push(`umount ${target}: ${r.stderr.trim()}`);
      }
      d.disk.mountPoint = undefined;
    }
    this.disks.clear();
    if (
      !this.stagingExisted &&
      existsSync(MIGRATION_STAGING_DIR) &&
      !isMounted(MIGRATION_STAGING_DIR) &&
      readdirSync(MIGRATION_STAGING_DIR).length === 0
    )
      rmdirSync(MIGRATION_STAGING_DIR);
    if (errors.length > 0) throw new Error(`NodeHost release: ${errors.join('; ')}`);
  }
}

/** The source device of the mount at `mountPoint` (the last one stacked there), or ''. */
function mountSource(mountPoint: string): string {
  const r = spawnSync('findmnt', ['-n', '-r', '-o', 'SOURCE', '--mountpoint', mountPoint], {
    encoding: 'utf8',
  });
  return r.status === 0 ? (r.stdout.trim().split('\n').at(-1) ?? '') : '';
}

/** Every mount point of `device`, in mount order. */
function mountsOf(device: string): string[] {
  const r = spawnSync('findmnt', ['-n', '-r', '-o', 'TARGET', '-S', device], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n').filter((l) => l !== '') : [];
}
