import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statfsSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { DescribeSnapshotsCommand, DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { HeadObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { checksumTree, sh } from '../support/loop-device';
import {
  type AlarmKind,
  type Drill,
  type DrillNodeSpec,
  type DrillTimeline,
  must,
  PREFIX,
  type Redeployment,
} from './drill';
import { type DiskSpec, diskFigures, type NodeHost, writeAged } from './node-host';
import { manifestDifferences, manifestSummary, type TreeEntry, treeManifest } from './tree-manifest';

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

/**
 * Checks that the router started `document` (`ended: 'Success'`: and that it succeeded); returns
 * its first execution.
 */
function checkRouterStarted(
  drill: Drill,
  t: DrillTimeline,
  document: string,
  ended: 'Success' | 'any' = 'Success',
): DrillTimeline['executions'][number] | undefined {
  const [started] = executions(t, document);
  drill.check(
    t,
    `the router started ${document}`,
    ended === 'any' ? started !== undefined : started?.status === ended,
    `${started?.status ?? 'not started'}`,
  );
  return started;
}

/** The ExpandVolume executions the automation ran, oldest first, started at `sinceMs` or later. */
function expandVolumeRuns(drill: Drill, sinceMs = 0): ReturnType<Drill['automation']['list']> {
  return drill.automation
    .list()
    .filter((e) => e.documentName === `${PREFIX}-ExpandVolume` && e.startedAt.getTime() >= sinceMs);
}

/** Gives `event` to the router and waits until every automation it started has ended. */
async function routeAndSettle(drill: Drill, event: Parameters<Drill['route']>[0]): Promise<void> {
  await drill.route(event);
  await drill.automation.idle();
}

/** Checks that no call of the run was denied (the denials' messages otherwise). */
function checkNoneDenied(drill: Drill, done: DrillTimeline): void {
  drill.check(
    done,
    'no call was denied',
    done.denied.length === 0,
    done.denied.map((d) => d.message).join('; ') || 'none',
  );
}

/** The drill node named `name` (each scenario has its own). */
function nodeNamed(drill: Drill, name: string): Drill['nodes'][number] {
  return must(
    drill.nodes.find((n) => n.name === name),
    name,
  );
}

/** What moto holds of a volume: its size (GiB) and how many snapshots were taken of it. */
async function volumeState(
  drill: Drill,
  volumeId: string,
): Promise<{ sizeGiB: number | undefined; snapshots: number }> {
  const volume = await drill.admin.ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  const snapshots = await drill.admin.ec2.send(
    new DescribeSnapshotsCommand({ Filters: [{ Name: 'volume-id', Values: [volumeId] }] }),
  );
  return { sizeGiB: volume.Volumes?.[0]?.Size, snapshots: (snapshots.Snapshots ?? []).length };
}

/** The WAL an incident leaves: `count` segments of `sizeMiB`, the first `old` of them `ageDays` old. */
interface WalSpec {
  readonly count: number;
  readonly sizeMiB: number;
  /** @default 0 */
  readonly old?: number;
  /** @default 0 */
  readonly ageDays?: number;
}

interface AlarmScenarioSpec {
  readonly name: string;
  readonly summary: string;
  /** The node's name (a benchmark runs the scenario on several). @default `drill-<name>` */
  readonly nodeName?: string;
  /** The disk; the node's EBS volume is as large. @default 1 GiB xfs */
  readonly disk?: DiskSpec;
  readonly alarm: AlarmKind;
  /** The WAL segments the incident leaves (written first). */
  readonly wal: WalSpec;
  /** Then the rest of the incident on the fresh, mounted disk. @default nothing more */
  fill?(drill: Drill, host: NodeHost): void;
  /** Last, database files until the disk is this % used. @default no database files */
  readonly usedPercent?: number;
  /** Runs after the automation ended (before validation). */
  afterRemediation?(drill: Drill, t: DrillTimeline): Promise<void>;
  /** Checks on the finished timeline. */
  verify(drill: Drill, t: DrillTimeline, originals: Map<string, string>): Promise<void>;
  /** @default true */
  readonly validates?: boolean;
}

const xfs1: DiskSpec = { fs: 'xfs', sizeGiB: 1 };

/** The common shape: incident → alarm event → router → documents → validation → checks. */
function alarmScenario(spec: AlarmScenarioSpec): Scenario {
  const disk = spec.disk ?? xfs1;
  const node: DrillNodeSpec = { name: spec.nodeName ?? `drill-${spec.name}`, volumeGiB: disk.sizeGiB };
  return {
    name: spec.name,
    summary: spec.summary,
    node,
    async run(drill) {
      const host = await drill.openNode(node.name, disk);
      const { count, sizeMiB, old = 0, ageDays = 0 } = spec.wal;
      try {
        writeWal(host, drill.walDir, count, sizeMiB, old, ageDays);
        spec.fill?.(drill, host);
        if (spec.usedPercent !== undefined) fillDatabase(drill.dataMount, drill.dbDir, spec.usedPercent);
        const originals = walChecksums(drill.walDir);
        const before = diskFigures(drill.dataMount);
        await host.publishDiskMetrics();
        const { instanceId } = nodeNamed(drill, node.name);
        const t = drill.begin(spec.name, node.name);
        t.before = before;
        const event = await drill.fireAlarm(node.name, spec.alarm);
        drill.mark(
          `alarm ${PREFIX}-${node.name}-disk-${spec.alarm} → ALARM at ${before.usedPercent}% used (${before.inodesFree} inodes free): event to the router`,
        );
        await routeAndSettle(drill, event);
        drill.mark('automation finished');
        await spec.afterRemediation?.(drill, t);
        await validate(drill, t, instanceId, spec.validates ?? true);
        const done = await drill.finish();
        done.after = diskFigures(drill.dataMount);
        checkNoneDenied(drill, done);
        await spec.verify(drill, done, originals);
        return done;
      } finally {
        // As CloudWatch does once the metrics recover (and so that the next scenario's re-check
        // sees only its own alarm): the alarm back to OK.
        await drill.resetAlarm(node.name, spec.alarm);
        await drill.closeNode();
      }
    },
  };
}

/** The main drill: a 99% full disk healed by expansion (`node` lets the benchmark run it on several nodes). */
export function criticalScenario(node = 'drill-critical'): Scenario {
  return alarmScenario({
    name: 'critical',
    summary: 'critical alarm (99% used) → ExpandVolume → volume and filesystem grown → validated',
    nodeName: node,
    alarm: 'critical',
    wal: { count: 8, sizeMiB: 16 },
    usedPercent: 99,
    async verify(drill, t, originals) {
      checkRouterStarted(drill, t, 'ExpandVolume');
      const volume = await volumeState(drill, nodeNamed(drill, t.node).volumeId);
      const size = volume.sizeGiB ?? 0;
      drill.check(t, 'the EBS volume grew', size > 1, `${size} GiB`);
      drill.check(t, 'a snapshot was taken first', volume.snapshots === 1, `${volume.snapshots}`);
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
  alarm: 'critical',
  wal: { count: 4, sizeMiB: 16 },
  fill(_drill, host) {
    host.injectFault('xfs_growfs', 'injected fault: the filesystem could not be grown');
  },
  usedPercent: 99,
  async afterRemediation(drill, t) {
    const [first] = expandVolumeRuns(drill).slice(-1);
    drill.mark(`first ExpandVolume: ${first?.status}; the operator runs it again`);
    await drill.runDocument('ExpandVolume', { InstanceId: nodeNamed(drill, t.node).instanceId });
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
    const volume = await volumeState(drill, nodeNamed(drill, t.node).volumeId);
    drill.check(
      t,
      'the volume grew once (11 GiB), not twice',
      volume.sizeGiB === 11,
      `${volume.sizeGiB} GiB`,
    );
    drill.check(t, 'one snapshot, from the first run', volume.snapshots === 1, `${volume.snapshots}`);
    await walInvariant(drill, t, originals, t.node);
  },
});

const warning = alarmScenario({
  name: 'warning',
  summary: 'warning alarm (85% used, old WAL) → ArchiveWal → segments verified in S3 and deleted → validated',
  alarm: 'warning',
  wal: { count: 26, sizeMiB: 16, old: 24, ageDays: 40 },
  usedPercent: 85,
  async verify(drill, t, originals) {
    checkRouterStarted(drill, t, 'ArchiveWal');
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
  alarm: 'emergency-space',
  wal: { count: 6, sizeMiB: 16, old: 2, ageDays: 10 },
  fill(drill) {
    mkdirSync(drill.backupDir, { recursive: true });
    for (const [i, age] of [40, 35, 1].entries()) {
      const file = join(drill.backupDir, `stemedb-backup-2026110${i + 1}.tar.gz`);
      writeFileSync(file, `backup ${i}\n`);
      const when = new Date(Date.now() - age * 86_400_000);
      utimesSync(file, when, when);
    }
  },
  usedPercent: 99,
  async verify(drill, t, originals) {
    const cleanup = checkRouterStarted(drill, t, 'EmergencyCleanup', 'any');
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
  disk: { fs: 'ext4', sizeGiB: 1, mkfsArgs: ['-N', '2048'] },
  alarm: 'emergency-inodes',
  wal: { count: 4, sizeMiB: 4 },
  fill(drill) {
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
    checkRouterStarted(drill, t, 'InodeCleanup');
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
    disk: { fs: 'xfs', sizeGiB: 64 },
    alarm: 'critical',
    validates: false,
    wal: { count: 12, sizeMiB: 8, old: 10, ageDays: 40 },
    usedPercent: 99,
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
        await routeAndSettle(drill, event);
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
      const volume = await volumeState(drill, nodeNamed(drill, t.node).volumeId);
      drill.check(t, 'the volume was not modified', volume.sizeGiB === 64, `${volume.sizeGiB} GiB`);
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
 * The §5B documents work on a second data volume: AddDataVolume runs for real in the `migrate`
 * scenario (its host dry run needs the drill's fstab, which only that scenario writes), and
 * RetireDataVolume needs a volume an earlier migration replaced, past its grace period. Their dry
 * runs are tested with the local runner in test/add-data-volume.automation.test.ts.
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
      const node = nodeNamed(drill, 'drill-dry-run');
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
      checkNoneDenied(drill, done);
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
  const volume = await volumeState(drill, volumeId);
  return {
    objectVersions: (objects.Versions ?? []).length,
    deleteMarkers: (objects.DeleteMarkers ?? []).length,
    volumeGiB: volume.sizeGiB,
    snapshots: volume.snapshots,
  };
}

// --- Runbook §5B: expansion refused at the cap → migration to a new volume -----------------------

/** The size the operator asks AddDataVolume for: above the 64 GiB cap, a cost decision made by hand. */
const MIGRATE_NEW_GIB = 96;
/** The cap the operator's re-deploy sets with the new volume (otherwise the new volume is above it). */
const MIGRATE_RAISED_CAP_GIB = 256;

/**
 * The database's files as a migration must carry them: real data, hard links (two names of one
 * inode, one in another directory), a sparse file, user xattrs, permissions and foreign owners
 * (numeric ids), a setgid directory, a symlink, a FIFO, an empty file and a name with spaces and a
 * newline.
 */
function writeDatabaseTree(dbDir: string): void {
  for (let i = 0; i < 4; i++) writeAged(join(dbDir, `sst-00010${i}.db`), 8 * MiB, 2 + i);
  const snapshots = join(dbDir, 'snapshots');
  mkdirSync(snapshots);
  linkSync(join(dbDir, 'sst-000100.db'), join(snapshots, 'sst-000100.db'));
  linkSync(join(dbDir, 'sst-000101.db'), join(dbDir, 'sst-000101.db.pinned'));
  symlinkSync('sst-000103.db', join(dbDir, 'CURRENT'));
  // 64 MiB with 8 KiB of data: two 4 KiB extents, the rest a hole.
  const sparse = join(dbDir, 'index-sparse.db');
  const fd = openSync(sparse, 'wx');
  try {
    writeSync(fd, Buffer.alloc(4096, 0x11), 0, 4096, 0);
    writeSync(fd, Buffer.alloc(4096, 0x22), 0, 4096, 64 * MiB - 4096);
  } finally {
    closeSync(fd);
  }
  const odd = join(dbDir, 'name with spaces\nand a newline.dat');
  writeFileSync(odd, 'a file name a shell loop would split\n');
  writeFileSync(join(dbDir, 'EMPTY'), '');
  const secret = join(dbDir, 'keys.dat');
  writeFileSync(secret, 'not for everyone\n');
  chmodSync(secret, 0o640);
  chownSync(secret, 1234, 5678);
  const shared = join(dbDir, 'shared');
  mkdirSync(shared);
  chownSync(shared, 1234, 5678);
  chmodSync(shared, 0o2750);
  writeFileSync(join(shared, 'owned-by-1234'), 'numeric ids, not names\n');
  chownSync(join(shared, 'owned-by-1234'), 1234, 5678);
  sh('mkfifo', [join(dbDir, 'control.fifo')]);
  sh('python3', [
    '-c',
    'import os, sys; os.setxattr(sys.argv[1], "user.stemedb.checksum", b"sha256:0123"); os.setxattr(sys.argv[2], "user.stemedb.role", b"\\x00binary\\xff")',
    join(dbDir, 'sst-000102.db'),
    shared,
  ]);
}

/**
 * Takes `mountPoint`'s xfs to `usedPercent` % used without writing data: xfs's reserved block pool
 * (`xfs_io -x resblks`) takes the blocks, so no file can use them and df counts them as used. A
 * 64 GiB disk that is 99% full of files would make the migration copy and checksum 63 GiB; this
 * keeps the disk as full as the alarm sees it while the copy is the real files. The reservation
 * lives in memory: it ends when the filesystem is unmounted (the migration's switch).
 */
function reserveUntilUsed(mountPoint: string, usedPercent: number): void {
  const st = statfsSync(mountPoint);
  const current = Number(
    /reserved blocks = (\d+)/.exec(sh('xfs_io', ['-x', '-c', 'resblks', mountPoint]))?.[1] ?? Number.NaN,
  );
  if (!Number.isInteger(current)) throw new Error(`xfs_io resblks on ${mountPoint}: no reserved block count`);
  // df rounds the used percentage up: leave 1.5 points free for 99%.
  const keepFree = Math.floor((Number(st.blocks) * (100 - usedPercent + 0.5)) / 100);
  const more = Number(st.bavail) - keepFree;
  if (more > 0) sh('xfs_io', ['-x', '-c', `resblks ${current + more}`, mountPoint]);
}

/** The last JSON line of a host command's output (the scripts' result), or undefined. */
function lastJson(stdout: string): Record<string, unknown> | undefined {
  const line = stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .at(-1);
  try {
    return line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>);
  } catch {
    return undefined;
  }
}

const tagsOf = (v: { Tags?: Array<{ Key?: string; Value?: string }> } | undefined): Record<string, string> =>
  Object.fromEntries((v?.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));

/**
 * Runbook §5B end to end. The node's volume is at maxSizeGiB (64 GiB) and 99% used: the critical
 * alarm's ExpandVolume is refused and falls back to ArchiveWal. The operator starts AddDataVolume
 * with SizeGiB=96 (above the cap: asked for explicitly): CreateVolume and AttachVolume in moto as
 * the automation role; the host sees the new disk appear with the new volume's serial, and
 * MigrateDataVolume (the instance role, real loop devices, the fake systemd and the stand-in)
 * moves every file, switches the drill's fstab and restarts StemeDB on the new filesystem. The
 * operator then re-deploys as the README says (existingVolumeId = the new volume, and the cap
 * raised since the new volume is above it): the drill synthesizes again and applies what changed.
 * A later emergency-space alarm on the refilled new volume ends with the NEW volume expanded.
 *
 * Why emergency-space for the follow-up and not critical: the router gives two starts of the same
 * document for the same node within its 5-minute window the same ClientToken (one disk reported
 * twice starts one remediation), and the drill's minutes fall in one window (a real migration of
 * a full 64 GiB volume takes longer). A critical alarm now would be held back by design until the
 * re-check after the window; EmergencyCleanup → ExpandVolume (a child) reaches the same expansion.
 */
const migrate: Scenario = {
  name: 'migrate',
  summary:
    'volume at maxSizeGiB → expansion refused → AddDataVolume moves the data to a new volume → re-deploy names it → the new volume is expanded',
  node: { name: 'drill-migrate', volumeGiB: 64 },
  async run(drill) {
    const name = 'drill-migrate';
    const migrateDocument = `${PREFIX}-Host-MigrateDataVolume`;
    // Never near the machine's /etc/fstab: the synthesized document must accept only the drill's.
    const fstabParameter = (
      drill.resolved.resources('AWS::SSM::Document').find((d) => d.properties.Name === migrateDocument)
        ?.properties.Content as
        | { parameters?: Record<string, { default?: string; allowedValues?: string[] }> }
        | undefined
    )?.parameters?.FstabFile;
    if (
      fstabParameter?.default !== drill.fstabFile ||
      JSON.stringify(fstabParameter.allowedValues) !== JSON.stringify([drill.fstabFile])
    )
      throw new Error(
        `${migrateDocument} FstabFile is ${JSON.stringify(fstabParameter)}; the drill runs it only when it accepts nothing but ${drill.fstabFile}`,
      );
    const host = await drill.openNode(name, { fs: 'xfs', sizeGiB: 64 });
    let redeployment: Redeployment | undefined;
    try {
      const node = nodeNamed(drill, name);
      const oldVolumeId = node.volumeId;
      // Two segments old enough for ArchiveWal (the refusal's fallback), one recent.
      writeWal(host, drill.walDir, 3, 4, 2, 40);
      writeDatabaseTree(drill.dbDir);
      reserveUntilUsed(drill.dataMount, 99);
      const oldDevice = host.deviceOf(oldVolumeId);
      const oldUuid = sh('blkid', ['-p', '-o', 'value', '-s', 'UUID', oldDevice]).trim();
      mkdirSync(dirname(drill.fstabFile), { recursive: true });
      const otherLines = [
        '# the drill node: the fstab MigrateDataVolume switches (fstabFile of the drill configuration)',
        'UUID=0a1b2c3d-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1',
      ];
      const oldEntry = `UUID=${oldUuid} ${drill.dataMount} xfs defaults,noatime 0 0`;
      writeFileSync(
        drill.fstabFile,
        `${[...otherLines, oldEntry, '/swapfile none swap sw 0 0'].join('\n')}\n`,
      );
      const originals = walChecksums(drill.walDir);
      const before = diskFigures(drill.dataMount);
      await host.publishDiskMetrics();

      const begunAt = Date.now();
      const t = drill.begin('migrate', name);
      t.before = before;
      const event = await drill.fireAlarm(name, 'critical');
      drill.mark(
        `alarm ${PREFIX}-${name}-disk-critical → ALARM at ${before.usedPercent}% used of the 64 GiB volume (the cap): event to the router`,
      );
      await routeAndSettle(drill, event);
      const [refusedRun] = expandVolumeRuns(drill, begunAt);
      drill.check(
        t,
        'ExpandVolume refused at the cap and ended Failed',
        refusedRun?.status === 'Failed',
        `${refusedRun?.status ?? 'not started'}: ${refusedRun?.failureMessage ?? ''}`.slice(0, 300),
      );

      // The operator's §5B, from the console. Snapshot of what must arrive, taken just before.
      const treeBefore = treeManifest(drill.dataMount);
      let treeAfterMigrate: TreeEntry[] | undefined;
      drill.afterHostCommand = (documentName, record) => {
        // The new filesystem as MigrateDataVolume left it, before ValidateDiskHealth writes to it.
        if (documentName === migrateDocument && record.status === 'Success')
          treeAfterMigrate = treeManifest(drill.dataMount);
      };
      drill.mark(
        `the operator starts AddDataVolume with SizeGiB=${MIGRATE_NEW_GIB} (${manifestSummary(treeBefore)})`,
      );
      const added = await drill
        .runDocument('AddDataVolume', {
          InstanceId: node.instanceId,
          SizeGiB: String(MIGRATE_NEW_GIB),
          Reason: 'drill: ExpandVolume refused at maxSizeGiB, move to a larger volume',
        })
        .finally(() => {
          drill.afterHostCommand = undefined;
        });
      drill.mark(
        `AddDataVolume: ${added.record.status}${added.record.failureMessage ? ` (${added.record.failureMessage})` : ''}`,
      );
      drill.check(
        t,
        'AddDataVolume succeeded',
        added.record.status === 'Success',
        added.record.failureMessage ?? added.record.status,
      );
      const newVolumeId = String(added.record.outputs['CreateVolume.VolumeId']?.[0] ?? '');
      if (!/^vol-[0-9a-f]+$/.test(newVolumeId))
        throw new Error(`AddDataVolume output no new volume: ${JSON.stringify(added.record.outputs)}`);

      // The host: every byte on the new filesystem, the service on it, fstab by UUID.
      const migration = [...drill.ledger.all()].reverse().find((r) => r.documentName === migrateDocument);
      const result = lastJson(migration?.stdout ?? '') ?? {};
      const timings = (result.timings ?? {}) as Record<string, number | null>;
      const verify = (result.verify ?? {}) as Record<string, unknown>;
      Object.assign(t.figures, {
        'migration downtime (service stopped → healthy on the new volume), s':
          timings.downtimeSeconds ?? 'none',
        'copy while running, s': timings.preSyncSeconds ?? 'none',
        'final copy (stopped), s': timings.finalSyncSeconds ?? 'none',
        'verification (manifest + checksum of every file), s': timings.verifySeconds ?? 'none',
        'fstab switch and remount, s': timings.switchSeconds ?? 'none',
        'start until healthy, s': timings.startSeconds ?? 'none',
        'verified files (distinct inodes) / bytes (apparent sizes)': `${verify.files ?? '?'} / ${verify.bytes ?? '?'}`,
      });
      drill.mark(
        `MigrateDataVolume: ${String(result.status)}; StemeDB down ${timings.downtimeSeconds ?? '?'} s (final copy ${timings.finalSyncSeconds ?? '?'} s, verification ${timings.verifySeconds ?? '?'} s)`,
      );
      drill.check(
        t,
        'MigrateDataVolume found the new disk by the volume ID (its serial), not a device path',
        migration?.parameters.VolumeId?.[0] === newVolumeId &&
          (migration?.parameters.Device?.[0] ?? '') === '' &&
          (result.new as { serial?: string } | undefined)?.serial === newVolumeId.replace('-', '') &&
          (result.new as { device?: string } | undefined)?.device === host.deviceOf(newVolumeId),
        `VolumeId ${migration?.parameters.VolumeId?.[0]}, Device '${migration?.parameters.Device?.[0] ?? ''}', found ${JSON.stringify(result.new)}`,
      );
      const phases = [
        /^backed up .*fstab to .*fstab\.bak-/,
        /^mkfs\.xfs /,
        /^mounted .* at \/mnt\/stemedb-migrate$/,
        /^copied .* while stemedb-api ran/,
        /^stopped stemedb-api$/,
        /^final copy with stemedb-api stopped/,
        /^verified: .*every file's checksum equal$/,
        /^switched .*fstab: .* on UUID=.* with nofail/,
        /^unmounted the old filesystem/,
        /^mounted UUID=.* from /,
        /^started stemedb-api, healthy$/,
      ];
      const actions = (result.actions ?? []) as string[];
      const order = phases.map((re) => actions.findIndex((a) => re.test(a)));
      drill.check(
        t,
        'the host phases ran in order: fstab backup, mkfs, copy while running, stop, final copy, verify, fstab switch, remount, start, healthy',
        result.status === 'migrated' &&
          order.every((at, i) => at >= 0 && (i === 0 || at > (order[i - 1] ?? 0))),
        `${String(result.status)}: ${actions.join(' → ')}`.slice(0, 600),
      );
      const differences = manifestDifferences(treeBefore, treeAfterMigrate ?? []);
      drill.check(
        t,
        'every file, link, xattr, owner, mode and mtime arrived exactly (the tree before vs the new filesystem)',
        treeAfterMigrate !== undefined && differences.length === 0,
        treeAfterMigrate === undefined
          ? 'no manifest after MigrateDataVolume'
          : differences.length === 0
            ? manifestSummary(treeAfterMigrate)
            : `differ: ${differences
                .slice(0, 5)
                .map((d) => JSON.stringify(d))
                .join(', ')}`,
      );
      const newDevice = host.deviceOf(newVolumeId);
      const newUuid = sh('blkid', ['-p', '-o', 'value', '-s', 'UUID', newDevice]).trim();
      drill.check(
        t,
        'the data mount is the new volume’s disk',
        host.dataVolumeId() === newVolumeId,
        `${drill.dataMount} on ${host.dataVolumeId() ?? 'nothing'} (${newDevice}, UUID=${newUuid})`,
      );
      const health = await fetch(`http://127.0.0.1:${drill.port}/v1/health`).then(
        (r) => r.status,
        (err: unknown) => String(err),
      );
      const write = await fetch(`http://127.0.0.1:${drill.port}/v1/assert`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ subject: 'drill', predicate: 'migrated', object: newVolumeId }),
      }).then(
        (r) => r.status,
        (err: unknown) => String(err),
      );
      drill.check(
        t,
        'StemeDB is healthy and writes on the new filesystem',
        health === 200 && write === 201,
        `health ${health}, assert ${write}`,
      );
      const fstab = readFileSync(drill.fstabFile, 'utf8').split('\n');
      const active = fstab.filter((l) => !/^\s*(#|$)/.test(l) && l.split(/\s+/)[1] === drill.dataMount);
      drill.check(
        t,
        'fstab names the new filesystem by UUID with nofail, the old line kept commented, the rest unchanged',
        active.length === 1 &&
          active[0] === `UUID=${newUuid} ${drill.dataMount} xfs defaults,noatime,nofail 0 0` &&
          fstab.includes(`#${oldEntry}`) &&
          otherLines.every((l) => fstab.includes(l)) &&
          fstab.includes('/swapfile none swap sw 0 0'),
        active.join(' | ') || 'no active entry',
      );
      const backups = readdirSync(dirname(drill.fstabFile)).filter((f) => f.startsWith('fstab.bak-'));
      drill.check(
        t,
        'the fstab was backed up first',
        backups.length === 1 &&
          readFileSync(join(dirname(drill.fstabFile), backups[0] as string), 'utf8').includes(
            `\n${oldEntry}\n`,
          ),
        backups.join(', ') || 'no backup',
      );
      const oldTree = host.withReadOnlyMount(oldVolumeId, (dir) => treeManifest(dir));
      const oldDifferences = manifestDifferences(treeBefore, oldTree);
      drill.check(
        t,
        'the old volume is unmounted and its filesystem unchanged (read-only mount, same manifest)',
        oldDifferences.length === 0 && host.dataVolumeId() !== oldVolumeId,
        oldDifferences.length === 0
          ? `${manifestSummary(oldTree)}`
          : `differ: ${oldDifferences.slice(0, 5).join(', ')}`,
      );

      // AWS: the new volume as AddDataVolume made it, the old one kept and marked.
      const volumes = await drill.admin.ec2.send(
        new DescribeVolumesCommand({ VolumeIds: [oldVolumeId, newVolumeId] }),
      );
      const oldVolume = volumes.Volumes?.find((v) => v.VolumeId === oldVolumeId);
      const newVolume = volumes.Volumes?.find((v) => v.VolumeId === newVolumeId);
      const oldTags = tagsOf(oldVolume);
      const newTags = tagsOf(newVolume);
      const attachedTo = (v: typeof oldVolume) =>
        (v?.Attachments ?? []).map((a) => `${a.InstanceId} ${a.Device} ${a.State}`).join(', ');
      drill.check(
        t,
        'the old volume is still attached, 64 GiB, tagged replaced by the new one',
        oldVolume?.Size === 64 &&
          attachedTo(oldVolume) === `${node.instanceId} /dev/sdf attached` &&
          oldTags['stemedb:managed'] === 'replaced' &&
          oldTags['stemedb:replaced-by'] === newVolumeId &&
          /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(oldTags['stemedb:replaced-at'] ?? ''),
        `${oldVolume?.Size} GiB, ${attachedTo(oldVolume)}, ${JSON.stringify(oldTags)}`,
      );
      const keyArn = drill.resolved.resources('AWS::KMS::Key')[0]?.attributes.Arn;
      drill.check(
        t,
        'the new volume: encrypted with the stack key, in the AZ, attached, tagged in the request',
        newVolume?.Size === MIGRATE_NEW_GIB &&
          newVolume.Encrypted === true &&
          keyArn !== undefined &&
          newVolume.KmsKeyId === keyArn &&
          newVolume.AvailabilityZone === node.availabilityZone &&
          attachedTo(newVolume) === `${node.instanceId} /dev/sdg attached` &&
          newTags['stemedb:managed'] === 'true' &&
          newTags['stemedb:node'] === name &&
          newTags['stemedb:deployment'] === PREFIX &&
          newTags['stemedb:replaces'] === oldVolumeId &&
          newTags['stemedb:migration'] === added.executionId &&
          newTags.Name === `${PREFIX}-${name}-data`,
        `${newVolume?.Size} GiB ${newVolume?.VolumeType}, encrypted ${newVolume?.Encrypted} with ${newVolume?.KmsKeyId}, ${newVolume?.AvailabilityZone}, ${attachedTo(newVolume)}, ${JSON.stringify(newTags)}`,
      );

      // The operator follows the README: the node names the new volume, and the cap (which the new
      // volume is above) is raised; `cdk deploy`.
      redeployment = await drill.redeploy((config) => ({
        ...config,
        expansion: { ...config.expansion, maxSizeGiB: MIGRATE_RAISED_CAP_GIB },
        nodes: config.nodes.map((n) => (n.name === name ? { ...n, existingVolumeId: newVolumeId } : n)),
      }));
      drill.mark(
        `re-deploy (synth ${redeployment.synthMs} ms): ${redeployment.changes.map((c) => `${c.change} ${c.type} ${c.logicalId}: ${c.applied ?? ''}`).join('; ')}`,
      );
      const registry = await drill.admin.ssm.send(
        new GetParameterCommand({ Name: `/${PREFIX}/nodes/${name}` }),
      );
      const entry = JSON.parse(registry.Parameter?.Value ?? '{}') as {
        volumeId?: string;
        instanceId?: string;
      };
      drill.check(
        t,
        'after the re-deploy the node registry names the new volume',
        entry.volumeId === newVolumeId && entry.instanceId === node.instanceId,
        registry.Parameter?.Value ?? 'missing',
      );
      const changedAlarms = redeployment.changes.filter((c) => c.type === 'AWS::CloudWatch::Alarm');
      drill.check(
        t,
        'the alarms needed no change (they follow the instance and the mount point)',
        changedAlarms.length === 0,
        changedAlarms.map((c) => c.logicalId).join(', ') || 'none changed',
      );

      // The new volume fills up in turn: the next alarm must grow the NEW volume.
      fillDatabase(drill.dataMount, drill.dbDir, 99);
      const full = diskFigures(drill.dataMount);
      await host.publishDiskMetrics();
      const followUp = await drill.fireAlarm(name, 'emergency-space');
      drill.mark(
        `alarm ${PREFIX}-${name}-disk-emergency-space → ALARM at ${full.usedPercent}% used of the new ${MIGRATE_NEW_GIB} GiB volume: event to the router`,
      );
      await routeAndSettle(drill, followUp);
      const sinceAdd = added.record.endedAt?.getTime() ?? 0;
      const [grow] = expandVolumeRuns(drill, sinceAdd);
      drill.check(
        t,
        'the follow-up expansion ran and succeeded',
        grow?.status === 'Success',
        `${grow?.status ?? 'not started'}${grow?.failureMessage ? `: ${grow.failureMessage}` : ''}`,
      );
      const grown = await drill.admin.ec2.send(
        new DescribeVolumesCommand({ VolumeIds: [oldVolumeId, newVolumeId] }),
      );
      const sizes = Object.fromEntries((grown.Volumes ?? []).map((v) => [v.VolumeId, v.Size]));
      const snapshots = await drill.admin.ec2.send(
        new DescribeSnapshotsCommand({ Filters: [{ Name: 'volume-id', Values: [newVolumeId] }] }),
      );
      drill.check(
        t,
        'the NEW volume grew (snapshot first), the old one did not',
        (sizes[newVolumeId] ?? 0) > MIGRATE_NEW_GIB &&
          sizes[oldVolumeId] === 64 &&
          (snapshots.Snapshots ?? []).length === 1,
        `${newVolumeId}: ${sizes[newVolumeId]} GiB, ${oldVolumeId}: ${sizes[oldVolumeId]} GiB, ${(snapshots.Snapshots ?? []).length} snapshot(s) of the new one`,
      );
      const afterGrowth = diskFigures(drill.dataMount);
      drill.check(
        t,
        'the filesystem on the new volume grew with it',
        afterGrowth.sizeBytes > full.sizeBytes * 1.4 && host.dataVolumeId() === newVolumeId,
        `${full.sizeBytes} → ${afterGrowth.sizeBytes} bytes on ${host.dataVolumeId()}`,
      );
      await validate(drill, t, node.instanceId, true);
      const done = await drill.finish();
      done.after = diskFigures(drill.dataMount);
      checkNoneDenied(drill, done);
      const subjects = done.notifications.map((n) => n.subject);
      const expected = [
        `${PREFIX}-ExpandVolume refused on ${node.instanceId}: not expanded`,
        `${PREFIX}-ArchiveWal done on ${node.instanceId} (${name})`,
        `${PREFIX}-AddDataVolume moved the data of ${node.instanceId} to a new volume`,
        `${PREFIX}-ExpandVolume started on ${node.instanceId}`,
        `${PREFIX}-EmergencyCleanup on ${node.instanceId}: still`,
        `${PREFIX}-ValidateDiskHealth on ${node.instanceId}: healthy`,
      ];
      const missing = expected.filter((e) => !subjects.some((s) => s.startsWith(e)));
      drill.check(
        t,
        'each document notified',
        missing.length === 0,
        missing.length === 0
          ? subjects.join(' | ')
          : `missing ${missing.join(' | ')}; got ${subjects.join(' | ')}`,
      );
      const moved = done.notifications.find((n) => n.subject.startsWith(`${PREFIX}-AddDataVolume moved`));
      drill.check(
        t,
        'the AddDataVolume notification tells the operator to name the new volume and retire the old',
        moved?.message.includes(`"existingVolumeId": "${newVolumeId}"`) === true &&
          moved.message.includes(`RetireDataVolume with VolumeId=${oldVolumeId}`),
        moved?.message.split('\n')[2]?.slice(0, 200) ?? 'no notification',
      );
      await walInvariant(drill, done, originals, name);
      // The other scenarios run on the deployment as it was (the cap of 64 GiB).
      await redeployment.restore();
      redeployment = undefined;
      const restored = await drill.admin.ssm.send(
        new GetParameterCommand({ Name: `/${PREFIX}/nodes/${name}` }),
      );
      drill.check(
        done,
        'the deployment before the re-deploy is back for the next scenarios (registry, cap)',
        (JSON.parse(restored.Parameter?.Value ?? '{}') as { volumeId?: string }).volumeId === oldVolumeId &&
          drill.deployedConfig.expansion.maxSizeGiB === 64,
        `registry ${restored.Parameter?.Value}, maxSizeGiB ${drill.deployedConfig.expansion.maxSizeGiB}`,
      );
      return done;
    } finally {
      drill.afterHostCommand = undefined;
      try {
        await drill.resetAlarm(name, 'critical');
        await drill.resetAlarm(name, 'emergency-space');
        await redeployment?.restore();
      } finally {
        await drill.closeNode();
      }
    }
  },
};

export const SCENARIOS: readonly Scenario[] = [
  critical,
  rerun,
  warning,
  emergency,
  inodes,
  refused,
  recheck,
  dryRun,
  migrate,
];

export function scenarioNamed(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
