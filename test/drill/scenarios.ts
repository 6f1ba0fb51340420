import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DescribeSnapshotsCommand, DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { HeadObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { checksumTree, sh } from '../support/loop-device';
import { type AlarmKind, type Drill, type DrillNodeSpec, type DrillTimeline, must, PREFIX } from './drill';
import { type DiskSpec, diskFigures, type NodeHost, writeAged } from './node-host';

/**
 * The drill's scenarios: each one a node of its own (so moto state never leaks between them), a
 * disk made as the incident leaves it, the trigger an alarm (or an operator), and checks of what
 * must be true afterwards. `npm run drill -- <name>` runs one; the test suite runs them all.
 */

const MiB = 1024 * 1024;

export interface Scenario {
  readonly name: string;
  readonly summary: string;
  readonly node: DrillNodeSpec;
  run(drill: Drill): Promise<DrillTimeline>;
}

/** SHA-256 (hex) of every WAL segment, by name: what must survive, on disk or in S3. */
function walChecksums(walDir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of readdirSync(walDir)) {
    out.set(
      name,
      createHash('sha256')
        .update(readFileSync(join(walDir, name)))
        .digest('hex'),
    );
  }
  return out;
}

/** WAL segments `000000010000000000000NNN` of `sizeMiB`, the first `old` of them `ageDays` old. */
function writeWal(
  host: NodeHost,
  walDir: string,
  count: number,
  sizeMiB: number,
  old: number,
  ageDays: number,
): void {
  for (let i = 0; i < count; i++) {
    const name = `0000000100000000${String(i + 1).padStart(8, '0')}`;
    // Old segments are older than the archive age; the rest were written in the last hour, in order.
    const age = i < old ? ageDays + (old - i) / 24 : (count - i) / 24 / 60;
    writeAged(join(walDir, name), sizeMiB * MiB, age);
  }
  void host;
}

/** Allocates database files (real extents, no data written) until the disk is `percent` % used. */
function fillDatabase(dataMount: string, dbDir: string, percent: number): void {
  const f = diskFigures(dataMount);
  const used = f.sizeBytes - f.availBytes;
  const target = Math.floor((f.sizeBytes * percent) / 100);
  const more = target - used;
  if (more <= 0) return;
  const file = join(dbDir, 'sst-000001.db');
  sh('fallocate', ['-l', String(more), file]);
}

/** Every original segment is on disk with the same SHA-256, or in S3 with it (ChecksumSHA256). */
async function walInvariant(
  drill: Drill,
  t: DrillTimeline,
  originals: Map<string, string>,
  node: string,
): Promise<{ onDisk: number; inS3: number }> {
  let onDisk = 0;
  let inS3 = 0;
  const lost: string[] = [];
  for (const [name, sha] of originals) {
    const path = join(drill.walDir, name);
    if (existsSync(path) && createHash('sha256').update(readFileSync(path)).digest('hex') === sha) {
      onDisk++;
      continue;
    }
    try {
      const head = await drill.admin.s3.send(
        new HeadObjectCommand({
          Bucket: drill.account.bucketName,
          Key: `wal/${node}/${name}`,
          ChecksumMode: 'ENABLED',
        }),
      );
      const stored = Buffer.from(head.ChecksumSHA256 ?? '', 'base64').toString('hex');
      if (stored === sha) inS3++;
      else lost.push(`${name} (S3 holds SHA-256 ${stored || 'none'})`);
    } catch (err) {
      lost.push(`${name} (${(err as Error).name})`);
    }
  }
  drill.check(
    t,
    'every original WAL segment is on disk or in S3 with the same SHA-256',
    lost.length === 0,
    lost.length === 0 ? `${onDisk} on disk, ${inS3} in S3, of ${originals.size}` : `lost: ${lost.join(', ')}`,
  );
  return { onDisk, inS3 };
}

/** Records the outcome of `ValidateDiskHealth` (run by an operator after the automation). */
async function validate(
  drill: Drill,
  t: DrillTimeline,
  instanceId: string,
  expectPass: boolean,
): Promise<void> {
  const run = await drill.runDocument('ValidateDiskHealth', { InstanceId: instanceId });
  const passed = run.record.status === 'Success';
  drill.check(
    t,
    expectPass ? 'ValidateDiskHealth passes' : 'ValidateDiskHealth reports the disk still full',
    passed === expectPass,
    `${run.record.status}${run.record.failureMessage ? `: ${run.record.failureMessage}` : ''}`,
  );
}

function executions(t: DrillTimeline, document: string): DrillTimeline['executions'] {
  return t.executions.filter((e) => e.document === `${PREFIX}-${document}`);
}

interface AlarmScenarioSpec {
  readonly name: string;
  readonly summary: string;
  readonly node: DrillNodeSpec;
  readonly disk: DiskSpec;
  readonly alarm: AlarmKind;
  /** Makes the incident on the fresh, mounted disk. */
  fill(drill: Drill, host: NodeHost): void;
  /** Runs after the automation ended (before validation). */
  afterRemediation?(drill: Drill, t: DrillTimeline): Promise<void>;
  /** Checks on the finished timeline. */
  verify(drill: Drill, t: DrillTimeline, originals: Map<string, string>): Promise<void>;
  /** @default true */
  readonly validates?: boolean;
}

/** The common shape: incident → alarm event → router → documents → validation → checks. */
function alarmScenario(spec: AlarmScenarioSpec): Scenario {
  return {
    name: spec.name,
    summary: spec.summary,
    node: spec.node,
    async run(drill) {
      const host = await drill.openNode(spec.node.name, spec.disk);
      try {
        spec.fill(drill, host);
        const originals = walChecksums(drill.walDir);
        const before = diskFigures(drill.dataMount);
        await host.publishDiskMetrics();
        const node = must(
          drill.nodes.find((n) => n.name === spec.node.name),
          spec.node.name,
        );
        const t = drill.begin(spec.name, spec.node.name);
        t.before = before;
        const event = await drill.fireAlarm(spec.node.name, spec.alarm);
        drill.mark(
          `alarm ${PREFIX}-${spec.node.name}-disk-${spec.alarm} → ALARM at ${before.usedPercent}% used (${before.inodesFree} inodes free): event to the router`,
        );
        await drill.route(event);
        await drill.automation.idle();
        drill.mark('automation finished');
        await spec.afterRemediation?.(drill, t);
        await validate(drill, t, node.instanceId, spec.validates ?? true);
        const done = await drill.finish();
        done.after = diskFigures(drill.dataMount);
        drill.check(
          done,
          'no call was denied',
          done.denied.length === 0,
          done.denied.map((d) => d.message).join('; ') || 'none',
        );
        await spec.verify(drill, done, originals);
        return done;
      } finally {
        // As CloudWatch does once the metrics recover (and so that the next scenario's re-check
        // sees only its own alarm): the alarm back to OK.
        await drill.resetAlarm(spec.node.name, spec.alarm);
        await drill.closeNode();
      }
    },
  };
}

const xfs1: DiskSpec = { fs: 'xfs', sizeGiB: 1 };

/** The main drill: a 99% full disk healed by expansion (`node` lets the benchmark run it on several nodes). */
export function criticalScenario(node = 'drill-critical'): Scenario {
  return alarmScenario({
    name: 'critical',
    summary: 'critical alarm (99% used) → ExpandVolume → volume and filesystem grown → validated',
    node: { name: node, volumeGiB: 1 },
    disk: xfs1,
    alarm: 'critical',
    fill(drill, host) {
      writeWal(host, drill.walDir, 8, 16, 0, 0);
      fillDatabase(drill.dataMount, drill.dbDir, 99);
    },
    async verify(drill, t, originals) {
      const [expand] = executions(t, 'ExpandVolume');
      drill.check(
        t,
        'the router started ExpandVolume',
        expand?.status === 'Success',
        `${expand?.status ?? 'not started'}`,
      );
      const node = must(
        drill.nodes.find((n) => n.name === t.node),
        t.node,
      );
      const volume = await drill.admin.ec2.send(new DescribeVolumesCommand({ VolumeIds: [node.volumeId] }));
      const size = volume.Volumes?.[0]?.Size ?? 0;
      drill.check(t, 'the EBS volume grew', size > 1, `${size} GiB`);
      const snapshots = await drill.admin.ec2.send(
        new DescribeSnapshotsCommand({ Filters: [{ Name: 'volume-id', Values: [node.volumeId] }] }),
      );
      drill.check(
        t,
        'a snapshot was taken first',
        (snapshots.Snapshots ?? []).length === 1,
        `${(snapshots.Snapshots ?? []).length}`,
      );
      drill.check(
        t,
        'the filesystem grew with it',
        (t.after?.sizeBytes ?? 0) > (t.before?.sizeBytes ?? 0) * 5,
        `${t.before?.sizeBytes} → ${t.after?.sizeBytes} bytes`,
      );
      await walInvariant(drill, t, originals, t.node);
    },
  });
}

const critical = criticalScenario();

/**
 * A fault half-way: GrowFilesystem fails after the volume grew (xfs_growfs exits 1 once), so
 * ExpandVolume ends Failed with the EBS volume at 11 GiB and the filesystem at 1 GiB. An operator
 * re-runs ExpandVolume from the console: the "growth not yet used" guard (ReadDiskUsage's
 * CloudWatch figures + the modification history) must grow the filesystem, not the volume again.
 */
const rerun = alarmScenario({
  name: 'rerun',
  summary:
    'GrowFilesystem fails after ModifyVolume → ExpandVolume re-run by hand grows the filesystem, not the volume again',
  node: { name: 'drill-rerun', volumeGiB: 1 },
  disk: xfs1,
  alarm: 'critical',
  fill(drill, host) {
    writeWal(host, drill.walDir, 4, 16, 0, 0);
    fillDatabase(drill.dataMount, drill.dbDir, 99);
    host.injectFault('xfs_growfs', 'injected fault: the filesystem could not be grown');
  },
  async afterRemediation(drill, t) {
    const [first] = drill.automation
      .list()
      .filter((e) => e.documentName === `${PREFIX}-ExpandVolume`)
      .slice(-1);
    drill.mark(`first ExpandVolume: ${first?.status}; the operator runs it again`);
    const node = must(
      drill.nodes.find((n) => n.name === t.node),
      t.node,
    );
    await drill.runDocument('ExpandVolume', { InstanceId: node.instanceId });
  },
  async verify(drill, t, originals) {
    const runs = executions(t, 'ExpandVolume');
    drill.check(
      t,
      'the first ExpandVolume failed at GrowFilesystem, the re-run succeeded',
      runs.length === 2 && runs[0]?.status === 'Failed' && runs[1]?.status === 'Success',
      runs.map((r) => r.status).join(', '),
    );
    const grow = t.steps.filter((s) => s.step === 'GrowFilesystem').map((s) => s.status);
    drill.check(
      t,
      'GrowFilesystem failed once, then grew',
      grow.join(',') === 'Failed,Success',
      grow.join(', '),
    );
    const node = must(
      drill.nodes.find((n) => n.name === t.node),
      t.node,
    );
    const volume = await drill.admin.ec2.send(new DescribeVolumesCommand({ VolumeIds: [node.volumeId] }));
    drill.check(
      t,
      'the volume grew once (11 GiB), not twice',
      volume.Volumes?.[0]?.Size === 11,
      `${volume.Volumes?.[0]?.Size} GiB`,
    );
    const snapshots = await drill.admin.ec2.send(
      new DescribeSnapshotsCommand({ Filters: [{ Name: 'volume-id', Values: [node.volumeId] }] }),
    );
    drill.check(
      t,
      'one snapshot, from the first run',
      (snapshots.Snapshots ?? []).length === 1,
      `${(snapshots.Snapshots ?? []).length}`,
    );
    await walInvariant(drill, t, originals, t.node);
  },
});

const warning = alarmScenario({
  name: 'warning',
  summary: 'warning alarm (85% used, old WAL) → ArchiveWal → segments verified in S3 and deleted → validated',
  node: { name: 'drill-warning', volumeGiB: 1 },
  disk: xfs1,
  alarm: 'warning',
  fill(drill, host) {
    writeWal(host, drill.walDir, 26, 16, 24, 40);
    fillDatabase(drill.dataMount, drill.dbDir, 85);
  },
  async verify(drill, t, originals) {
    const [archive] = executions(t, 'ArchiveWal');
    drill.check(
      t,
      'the router started ArchiveWal',
      archive?.status === 'Success',
      `${archive?.status ?? 'not started'}`,
    );
    const { inS3, onDisk } = await walInvariant(drill, t, originals, t.node);
    drill.check(
      t,
      'the 24 old segments left the disk, verified in S3',
      inS3 === 24 && onDisk === 2,
      `${inS3} in S3, ${onDisk} on disk`,
    );
  },
});

const emergency = alarmScenario({
  name: 'emergency',
  summary:
    'emergency-space alarm (99% used) → EmergencyCleanup (archive, backups, journal) → still above 95% → ExpandVolume → validated',
  node: { name: 'drill-emergency', volumeGiB: 1 },
  disk: xfs1,
  alarm: 'emergency-space',
  fill(drill, host) {
    writeWal(host, drill.walDir, 6, 16, 2, 10);
    mkdirSync(drill.backupDir, { recursive: true });
    for (const [i, age] of [40, 35, 1].entries()) {
      const file = join(drill.backupDir, `stemedb-backup-2026110${i + 1}.tar.gz`);
      writeFileSync(file, `backup ${i}\n`);
      const when = new Date(Date.now() - age * 86_400_000);
      utimesSync(file, when, when);
    }
    fillDatabase(drill.dataMount, drill.dbDir, 99);
  },
  async verify(drill, t, originals) {
    const [cleanup] = executions(t, 'EmergencyCleanup');
    drill.check(
      t,
      'the router started EmergencyCleanup',
      cleanup !== undefined,
      `${cleanup?.status ?? 'not started'}`,
    );
    const expand = executions(t, 'ExpandVolume').find((e) => e.parent === cleanup?.id);
    drill.check(
      t,
      'EmergencyCleanup escalated to ExpandVolume (still above 95%)',
      expand?.status === 'Success',
      `${expand?.status ?? 'not started'}`,
    );
    const kept = readdirSync(drill.backupDir);
    drill.check(
      t,
      'old backups deleted, the newest kept',
      kept.length === 1 && kept[0]?.endsWith('03.tar.gz') === true,
      kept.join(', '),
    );
    await walInvariant(drill, t, originals, t.node);
  },
});

const inodes = alarmScenario({
  name: 'inodes',
  summary: 'inode alarm on an inode-exhausted ext4 → InodeCleanup (old *.tmp and empty files) → validated',
  node: { name: 'drill-inodes', volumeGiB: 1 },
  disk: { fs: 'ext4', sizeGiB: 1, mkfsArgs: ['-N', '2048'] },
  alarm: 'emergency-inodes',
  fill(drill, host) {
    writeWal(host, drill.walDir, 4, 4, 0, 0);
    const tmp = join(drill.dbDir, 'tmp-spill');
    mkdirSync(tmp, { recursive: true });
    const when = new Date(Date.now() - 3 * 3_600_000);
    for (let i = 0; ; i++) {
      const file = join(tmp, `spill-${i}.tmp`);
      try {
        writeFileSync(file, i % 2 === 0 ? '' : 'x');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
      utimesSync(file, when, when);
    }
  },
  async verify(drill, t, originals) {
    const [cleanup] = executions(t, 'InodeCleanup');
    drill.check(
      t,
      'the router started InodeCleanup',
      cleanup?.status === 'Success',
      `${cleanup?.status ?? 'not started'}`,
    );
    drill.check(
      t,
      'inodes were freed',
      (t.after?.inodesFree ?? 0) > (t.before?.inodesFree ?? 0) + 1000,
      `${t.before?.inodesFree} → ${t.after?.inodesFree} free`,
    );
    await walInvariant(drill, t, originals, t.node);
  },
});

/** The volume is at the configured cap (64 GiB): expansion is refused, the WAL goes to S3 instead. */
function refusedSpec(name: string, summary: string, recheck: boolean): AlarmScenarioSpec {
  return {
    name,
    summary,
    node: { name: `drill-${name}`, volumeGiB: 64 },
    disk: { fs: 'xfs', sizeGiB: 64 },
    alarm: 'critical',
    validates: false,
    fill(drill, host) {
      writeWal(host, drill.walDir, 12, 8, 10, 40);
      fillDatabase(drill.dataMount, drill.dbDir, 99);
    },
    async afterRemediation(drill, t) {
      if (!recheck) return;
      const settle = Math.ceil(300 * drill.sleepScale);
      const event = {
        version: '0',
        id: crypto.randomUUID(),
        'detail-type': 'Scheduled Event',
        source: 'aws.events',
        account: '123456789012',
        time: `${new Date().toISOString().slice(0, 19)}Z`,
        region: 'eu-west-1',
        resources: [`arn:aws:events:eu-west-1:123456789012:rule/${PREFIX}-disk-alarm-recheck`],
        detail: {},
      };
      for (let round = 1; round <= 2; round++) {
        await new Promise((r) => setTimeout(r, settle * 1000 + 200));
        t.sleptMs += settle * 1000 + 200;
        drill.mark(`re-check ${round} (the schedule; settle ${settle} s, scaled from 300 s)`);
        await drill.route(event);
        await drill.automation.idle();
      }
    },
    async verify(drill, t, originals) {
      const [expand] = executions(t, 'ExpandVolume');
      drill.check(
        t,
        'ExpandVolume refused and ended Failed',
        expand?.status === 'Failed',
        `${expand?.status ?? 'not started'}`,
      );
      const fallback = executions(t, 'ArchiveWal').find((e) => e.parent === expand?.id);
      drill.check(
        t,
        'it fell back to ArchiveWal',
        fallback?.status === 'Success',
        `${fallback?.status ?? 'not started'}`,
      );
      const refusals = t.notifications.filter((n) => n.subject.startsWith(`${PREFIX}-ExpandVolume refused`));
      drill.check(
        t,
        'one refusal notification',
        refusals.length === 1,
        t.notifications.map((n) => n.subject).join(' | '),
      );
      const node = must(
        drill.nodes.find((n) => n.name === t.node),
        t.node,
      );
      const volume = await drill.admin.ec2.send(new DescribeVolumesCommand({ VolumeIds: [node.volumeId] }));
      drill.check(
        t,
        'the volume was not modified',
        volume.Volumes?.[0]?.Size === 64,
        `${volume.Volumes?.[0]?.Size} GiB`,
      );
      const { inS3 } = await walInvariant(drill, t, originals, t.node);
      drill.check(t, 'the 10 old segments are in S3', inS3 === 10, `${inS3}`);
      if (recheck) {
        const own = `${PREFIX}-${t.node}-disk-critical`;
        const decisions = t.routerDecisions
          .filter((d) => (d as { alarmName?: string }).alarmName === own)
          .map((d) => (d as { decision: string }).decision);
        drill.check(
          t,
          'the re-check tells a human once, then not again',
          decisions.includes('escalated-to-human') &&
            decisions.filter((d) => d === 'escalated-to-human').length === 1 &&
            decisions.at(-1) === 'already-escalated',
          decisions.join(', '),
        );
        const human = t.notifications.filter((n) =>
          n.subject.includes(`${own} still in ALARM, automation exhausted`),
        );
        drill.check(t, 'one "automation exhausted" notification', human.length === 1, `${human.length}`);
      }
    },
  };
}

const refused = alarmScenario(
  refusedSpec(
    'refused',
    'critical alarm on a volume at maxSizeGiB → expansion refused → ArchiveWal fallback, one notification',
    false,
  ),
);
const recheck = alarmScenario(
  refusedSpec(
    'recheck',
    'an alarm that stays in ALARM: the re-check schedule escalates to a human once',
    true,
  ),
);

/**
 * The §5B documents work on a second data volume (CreateVolume, AttachVolume, a new disk on the
 * host), which the drill does not emulate yet: their dry runs are tested with the local runner in
 * test/add-data-volume-automation.test.ts, and a drill scenario for them is still to come.
 */
const NEEDS_A_SECOND_VOLUME: ReadonlySet<string> = new Set(['AddDataVolume', 'RetireDataVolume']);

/** Every document with a DryRun parameter, started from the "console" with DryRun=true: nothing changes. */
const dryRun: Scenario = {
  name: 'dry-run',
  summary: 'a console-style start of each document with DryRun=true changes nothing on disk or in moto',
  node: { name: 'drill-dry-run', volumeGiB: 1 },
  async run(drill) {
    const host = await drill.openNode('drill-dry-run', xfs1);
    try {
      writeWal(host, drill.walDir, 20, 8, 16, 40);
      fillDatabase(drill.dataMount, drill.dbDir, 92);
      const configFile = drill.configFile;
      mkdirSync(dirname(configFile), { recursive: true });
      writeFileSync(configFile, '[server]\nport = 18180\n\n[wal]\nretention_days = 30\n');
      await host.publishDiskMetrics();
      const node = must(
        drill.nodes.find((n) => n.name === 'drill-dry-run'),
        'node',
      );
      const disk = checksumTree(drill.dataMount);
      const moto = await motoState(drill, node.volumeId);
      const config = readFileSync(configFile, 'utf8');
      const t = drill.begin('dry-run', 'drill-dry-run');
      t.before = diskFigures(drill.dataMount);
      const documents = drill.resolved
        .resources('AWS::SSM::Document')
        .filter((d) => d.properties.DocumentType === 'Automation')
        .filter((d) => Object.hasOwn((d.properties.Content as { parameters: object }).parameters, 'DryRun'))
        .map((d) => d.ref.slice(PREFIX.length + 1))
        .filter((name) => !NEEDS_A_SECOND_VOLUME.has(name))
        .sort();
      for (const name of documents) {
        const parameters: Record<string, string> = { InstanceId: node.instanceId, DryRun: 'true' };
        const run = await drill.runDocument(name, parameters);
        drill.mark(
          `${name} DryRun=true: ${run.record.status}${run.record.failureMessage ? ` (${run.record.failureMessage})` : ''}`,
        );
        drill.check(
          t,
          `${name} dry run succeeds`,
          run.record.status === 'Success',
          run.record.failureMessage ?? run.record.status,
        );
      }
      const done = await drill.finish();
      done.after = diskFigures(drill.dataMount);
      const diskAfter = checksumTree(drill.dataMount);
      const changed = [...new Set([...Object.keys(disk), ...Object.keys(diskAfter)])].filter(
        (k) => disk[k] !== diskAfter[k],
      );
      drill.check(
        done,
        'no file on the data disk changed',
        changed.length === 0,
        changed.slice(0, 10).join(', ') || `${Object.keys(disk).length} files unchanged`,
      );
      drill.check(done, 'config.toml unchanged', readFileSync(configFile, 'utf8') === config, configFile);
      const motoAfter = await motoState(drill, node.volumeId);
      drill.check(
        done,
        'nothing changed in moto (objects, volume, snapshots)',
        JSON.stringify(moto) === JSON.stringify(motoAfter),
        `${JSON.stringify(moto)} → ${JSON.stringify(motoAfter)}`,
      );
      drill.check(
        done,
        'no call was denied',
        done.denied.length === 0,
        done.denied.map((d) => d.message).join('; ') || 'none',
      );
      drill.check(done, 'every dry run was covered', documents.length >= 5, documents.join(', '));
      return done;
    } finally {
      await drill.closeNode();
    }
  },
};

async function motoState(drill: Drill, volumeId: string): Promise<Record<string, unknown>> {
  const objects = await drill.admin.s3.send(
    new ListObjectVersionsCommand({ Bucket: drill.account.bucketName }),
  );
  const volume = await drill.admin.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  const snapshots = await drill.admin.ec2.send(
    new DescribeSnapshotsCommand({ Filters: [{ Name: 'volume-id', Values: [volumeId] }] }),
  );
  return {
    objectVersions: (objects.Versions ?? []).length,
    deleteMarkers: (objects.DeleteMarkers ?? []).length,
    volumeGiB: volume.Volumes?.[0]?.Size,
    snapshots: (snapshots.Snapshots ?? []).length,
  };
}

export const SCENARIOS: readonly Scenario[] = [
  critical,
  rerun,
  warning,
  emergency,
  inodes,
  refused,
  recheck,
  dryRun,
];

export function scenarioNamed(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
