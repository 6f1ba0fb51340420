import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  EC2Client,
  RunInstancesCommand,
  type Tag,
} from '@aws-sdk/client-ec2';
import { DeleteParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ExpandConfig, expandVolume, loadExpandConfig } from '../lambda/expand-volume';
import { logger } from '../lambda/shared/powertools';
import { GIB } from '../lambda/shared/sizing-policy';
import { waitForVolumeModification } from '../lambda/wait-for-volume-modification';
import { type MotoServer, startMotoServer, TEST_REGION } from './support/moto-server';

/**
 * expand-volume and the waiter end to end with the real SDK against moto_server on 127.0.0.1:
 * a real instance, a tagged volume in its AZ, attached; snapshot, ModifyVolume and the size change.
 * moto's limits: ModifyVolume completes at once (state `completed`, progress 100) and has no rate
 * limit, so in-flight reuse, deferral and AWS refusals are covered by the mock tests instead.
 */

let moto: MotoServer;
let ec2: EC2Client;
let ssm: SSMClient;
let imageId: string;
const CONFIG: ExpandConfig = loadExpandConfig({});
const deps = () => ({ ec2, ssm, config: CONFIG, retry: { sleep: async () => {} } });

const MANAGED: Tag[] = [
  { Key: 'stemedb:managed', Value: 'true' },
  { Key: 'stemedb:node', Value: 'db-1' },
  { Key: 'stemedb:deployment', Value: 'StemeDB' },
];

/** Writes node `name`'s registry entry as the stack does (`/StemeDB/nodes/<name>`). */
async function register(name: string, instanceId: string, volumeId: string, az: string): Promise<void> {
  const Value = JSON.stringify({ name, instanceId, availabilityZone: az, volumeId, dataMount: '/data' });
  await ssm.send(
    new PutParameterCommand({ Name: `/StemeDB/nodes/${name}`, Type: 'String', Value, Overwrite: true }),
  );
}

/**
 * Runs an instance and attaches a volume with `tags` to it; returns their IDs. The node named by
 * the tags is registered with them unless `registered` is false.
 */
async function node(
  tags: Tag[],
  sizeGiB = 10,
  registered = true,
): Promise<{ instanceId: string; volumeId: string; az: string }> {
  const run = await ec2.send(
    new RunInstancesCommand({ ImageId: imageId, MinCount: 1, MaxCount: 1, InstanceType: 't3.micro' }),
  );
  const instance = run.Instances?.[0];
  const instanceId = instance?.InstanceId ?? '';
  const az = instance?.Placement?.AvailabilityZone ?? `${TEST_REGION}a`;
  const volumeId = await volumeIn(az, tags, sizeGiB);
  await ec2.send(new AttachVolumeCommand({ InstanceId: instanceId, VolumeId: volumeId, Device: '/dev/sdf' }));
  const name = tags.find((t) => t.Key === 'stemedb:node')?.Value;
  if (registered && name !== undefined) await register(name, instanceId, volumeId, az);
  return { instanceId, volumeId, az };
}

async function volumeIn(az: string, tags: Tag[], sizeGiB = 10): Promise<string> {
  const vol = await ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: az,
      Size: sizeGiB,
      VolumeType: 'gp3',
      ...(tags.length > 0 ? { TagSpecifications: [{ ResourceType: 'volume', Tags: tags }] } : {}),
    }),
  );
  return vol.VolumeId ?? '';
}

async function sizeOf(volumeId: string): Promise<number | undefined> {
  const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  return out.Volumes?.[0]?.Size;
}

async function modificationsOf(volumeId: string) {
  const out = await ec2.send(new DescribeVolumesModificationsCommand({ VolumeIds: [volumeId] }));
  return out.VolumesModifications ?? [];
}

async function snapshotsOf(volumeId: string) {
  const out = await ec2.send(
    new DescribeSnapshotsCommand({ Filters: [{ Name: 'volume-id', Values: [volumeId] }] }),
  );
  return out.Snapshots ?? [];
}

beforeAll(async () => {
  logger.setLogLevel('SILENT');
  moto = await startMotoServer();
  ec2 = new EC2Client({
    endpoint: moto.endpoint,
    region: TEST_REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
  ssm = new SSMClient({
    endpoint: moto.endpoint,
    region: TEST_REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
  const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
  const id = images.Images?.find((i) => i.ImageId?.startsWith('ami-'))?.ImageId;
  if (id === undefined) throw new Error('moto_server lists no AMI to run an instance from');
  imageId = id;
});

afterAll(async () => {
  ec2?.destroy();
  ssm?.destroy();
  await moto?.stop();
});

describe('expand-volume against moto_server', () => {
  it('reads the registry, snapshots with tags, grows the managed volume and lists its older snapshots, in six API calls', async () => {
    const { instanceId, volumeId } = await node(MANAGED);
    const r = await expandVolume({ instanceId, volumeId, reason: 'moto end to end' }, deps());
    expect(r).toMatchObject({
      status: 'started',
      volumeId,
      instanceId,
      node: 'db-1',
      currentSizeGiB: 10,
      targetSizeGiB: 20,
      volumeType: 'gp3',
      snapshotsDeleted: [],
      apiCalls: 6,
    });
    expect(r.snapshotId).toMatch(/^snap-/);
    expect(await sizeOf(volumeId)).toBe(20);
    const [snap] = await snapshotsOf(volumeId);
    expect(snap?.SnapshotId).toBe(r.snapshotId);
    expect(Object.fromEntries((snap?.Tags ?? []).map((t) => [t.Key, t.Value]))).toEqual({
      'stemedb:managed': 'true',
      'stemedb:node': 'db-1',
      'stemedb:deployment': 'StemeDB',
      'stemedb:reason': 'expand-volume',
    });
    expect(await modificationsOf(volumeId)).toMatchObject([{ OriginalSize: 10, TargetSize: 20 }]);
  });

  it('keeps the newest completed pre-expansion snapshots, deletes the older ones, and never the DLM or another deployment’s', async () => {
    const { instanceId, volumeId } = await node(MANAGED);
    const tagged = async (tags: Tag[]) =>
      (
        await ec2.send(
          new CreateSnapshotCommand({
            VolumeId: volumeId,
            TagSpecifications: [{ ResourceType: 'snapshot', Tags: tags }],
          }),
        )
      ).SnapshotId ?? '';
    const daily = await tagged([...MANAGED, { Key: 'stemedb:snapshot', Value: 'daily' }]);
    const foreign = await tagged([
      ...MANAGED.filter((t) => t.Key !== 'stemedb:deployment'),
      { Key: 'stemedb:deployment', Value: 'Other' },
      { Key: 'stemedb:reason', Value: 'expand-volume' },
    ]);
    const keepOne = { ...deps(), config: { ...CONFIG, snapshotsKept: 1 } };
    const taken: string[] = [];
    for (let i = 0; i < 3; i++) {
      // moto stamps StartTime to the second: one second apart, "newest" is well defined.
      if (i > 0) await new Promise((r) => setTimeout(r, 1100));
      const r = await expandVolume({ instanceId, volumeId }, keepOne);
      expect(r.status).toBe('started');
      expect(r.snapshotRetentionProblems).toEqual([]);
      expect(r.snapshotsDeleted).toEqual(i < 2 ? [] : [taken[0]]);
      taken.push(r.snapshotId);
    }
    const left = (await snapshotsOf(volumeId)).map((s) => s.SnapshotId).sort();
    expect(left).toEqual([daily, foreign, taken[1], taken[2]].sort());
    expect(await sizeOf(volumeId)).toBe(45);
  });

  it('finds the managed volume by tag and attachment beside the root and an untagged volume', async () => {
    const { instanceId, volumeId, az } = await node(MANAGED);
    const untagged = await volumeIn(az, []);
    await ec2.send(
      new AttachVolumeCommand({ InstanceId: instanceId, VolumeId: untagged, Device: '/dev/sdg' }),
    );
    const r = await expandVolume({ instanceId }, deps());
    expect(r).toMatchObject({ status: 'started', volumeId, targetSizeGiB: 20 });
    expect(await sizeOf(untagged)).toBe(10);
  });

  it('reuses the completed modification when the same request comes again', async () => {
    // The disk report shows a filesystem that still fits the old 10 GiB: the growth is unused.
    const { instanceId, volumeId } = await node(MANAGED);
    const request = { instanceId, volumeId, usedBytes: 9 * GIB, filesystemBytes: Math.floor(9.8 * GIB) };
    const first = await expandVolume(request, deps());
    const second = await expandVolume(request, deps());
    expect(first).toMatchObject({ status: 'started', targetSizeGiB: 20 });
    expect(second).toMatchObject({
      status: 'reused',
      targetSizeGiB: 20,
      modificationState: 'completed',
      apiCalls: 3,
    });
    expect(await modificationsOf(volumeId)).toHaveLength(1);
    expect(await snapshotsOf(volumeId)).toHaveLength(1);
    expect(await sizeOf(volumeId)).toBe(20);
  });

  it('without a disk report grows again after a completed modification (moto completes at once)', async () => {
    // On AWS the first modification would still be modifying/optimizing and be reused; moto
    // completes it at once and has no rate limit, so a second expansion is accepted.
    const { instanceId, volumeId } = await node(MANAGED);
    await expandVolume({ instanceId, volumeId }, deps());
    const second = await expandVolume({ instanceId, volumeId }, deps());
    expect(second).toMatchObject({ status: 'started', currentSizeGiB: 20, targetSizeGiB: 30 });
    expect(await modificationsOf(volumeId)).toHaveLength(2);
  });

  // [the volume, its tags, what the refusal says]
  it.each<[string, Tag[], string]>([
    ['an untagged volume', [{ Key: 'stemedb:node', Value: 'db-1' }], 'is not tagged stemedb:managed=true'],
    [
      'a managed volume of another deployment',
      MANAGED.map((t) => (t.Key === 'stemedb:deployment' ? { ...t, Value: 'Other' } : t)),
      'belongs to deployment "Other"',
    ],
  ])('refuses %s and changes nothing', async (_volume, tags, reason) => {
    const { instanceId, volumeId } = await node(tags);
    const r = await expandVolume({ instanceId, volumeId }, deps());
    expect(r).toMatchObject({ status: 'refused', apiCalls: 1 });
    expect(r.reason).toContain(reason);
    expect(await sizeOf(volumeId)).toBe(10);
    expect(await snapshotsOf(volumeId)).toHaveLength(0);
  });

  it('refuses an instance that is not a registered node of this deployment and changes nothing', async () => {
    const { instanceId, volumeId, az } = await node(MANAGED, 10, false);
    await ssm.send(new DeleteParameterCommand({ Name: '/StemeDB/nodes/db-1' })).catch(() => undefined);
    const missing = await expandVolume({ instanceId, volumeId }, deps());
    expect(missing).toMatchObject({ status: 'refused', apiCalls: 2 });
    expect(missing.reason).toBe(
      `${instanceId} is not a registered node of deployment StemeDB: no registry entry /StemeDB/nodes/db-1`,
    );
    // db-1 is registered, but on another instance (another deployment's db-1, same tags).
    const registered = await node(MANAGED);
    const other = await expandVolume({ instanceId, volumeId }, deps());
    expect(other.status).toBe('refused');
    expect(other.reason).toContain(`names instance ${registered.instanceId}`);
    await register('db-1', instanceId, registered.volumeId, az);
    const wrongVolume = await expandVolume({ instanceId, volumeId }, deps());
    expect(wrongVolume.reason).toContain(`names volume ${registered.volumeId}, not ${volumeId}`);
    expect(await sizeOf(volumeId)).toBe(10);
    expect(await snapshotsOf(volumeId)).toHaveLength(0);
  });

  it('refuses a managed volume attached to another instance', async () => {
    const { volumeId } = await node(MANAGED);
    const other = await node(MANAGED);
    const r = await expandVolume({ instanceId: other.instanceId, volumeId }, deps());
    expect(r.status).toBe('refused');
    expect(r.reason).toContain(`not to ${other.instanceId}`);
    expect(await sizeOf(volumeId)).toBe(10);
  });

  it('refuses at the cap of the configuration', async () => {
    const { instanceId, volumeId } = await node(MANAGED, 4096);
    const r = await expandVolume({ instanceId, volumeId }, deps());
    expect(r).toMatchObject({
      status: 'refused',
      reason: 'the volume is 4096 GiB, at the cap: maxSizeGiB (4096 GiB)',
    });
    expect(await modificationsOf(volumeId)).toHaveLength(0);
  });

  it('in a dry run changes nothing', async () => {
    const { instanceId, volumeId } = await node(MANAGED);
    const r = await expandVolume({ instanceId, volumeId, dryRun: 'true' }, deps());
    expect(r).toMatchObject({ status: 'dry-run', targetSizeGiB: 20, snapshotId: '' });
    expect(await sizeOf(volumeId)).toBe(10);
    expect(await snapshotsOf(volumeId)).toHaveLength(0);
  });

  it('the waiter reports the grown volume ready', async () => {
    const { instanceId, volumeId } = await node(MANAGED);
    const r = await expandVolume({ instanceId, volumeId }, deps());
    const w = await waitForVolumeModification(
      { volumeId, targetSizeGiB: String(r.targetSizeGiB) },
      { ec2, config: { pollIntervalSeconds: 1, maxPollIntervalSeconds: 1, maxWaitSeconds: 10 } },
    );
    expect(w).toMatchObject({ status: 'ready', state: 'completed', progress: 100, apiCalls: 1 });
  });

  it('the deployed handler works from the environment alone', async () => {
    const { instanceId, volumeId } = await node(MANAGED);
    const saved = { ...process.env };
    Object.assign(process.env, moto.env, { GROW_PERCENT: '100', SNAPSHOT_BEFORE_EXPAND: 'false' });
    try {
      vi.resetModules();
      // Fresh modules read the environment as a cold start does; silence their logger and metrics.
      const fresh = await import('../lambda/shared/powertools.js');
      fresh.logger.setLogLevel('SILENT');
      const publish = vi.spyOn(fresh.metrics, 'publishStoredMetrics').mockImplementation(() => fresh.metrics);
      const { handler } = await import('../lambda/expand-volume.js');
      const r = await handler({ instanceId, volumeId: '', dryRun: 'false', reason: '' });
      expect(r).toMatchObject({
        status: 'started',
        volumeId,
        targetSizeGiB: 20,
        snapshotId: '',
        apiCalls: 4,
      });
      expect(publish).toHaveBeenCalledTimes(1);
    } finally {
      process.env = saved;
      vi.restoreAllMocks();
    }
  });
});
