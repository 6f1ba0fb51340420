import {
  CreateSnapshotCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  EC2Client,
  ModifyVolumeCommand,
  type Snapshot,
  type Volume,
  type VolumeModification,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type ExpandConfig,
  type ExpandDeps,
  expandVolume,
  handler,
  loadExpandConfig,
  parseExpandInput,
} from '../lambda/expand-volume';
import { logger, metrics } from '../lambda/shared/powertools';
import { GIB } from '../lambda/shared/sizing-policy';
import { MAX_DELETIONS_PER_RUN } from '../lambda/shared/snapshot-retention';
import RUNBOOK_DEFAULTS from './fixtures/expand-volume-defaults.json';
import {
  ec2Error,
  INSTANCE,
  MANAGED_TAGS,
  managedVolume,
  mockExpandableVolume,
  OTHER_INSTANCE,
  registryEntry,
  ssmError,
  tagList,
  VOLUME,
} from './support/lambda-ec2-fixtures';

/**
 * Error paths of expand-volume that moto cannot produce (in-flight modifications, AWS refusals,
 * throttling), with the EC2 client mocked. The end-to-end path runs against moto_server in
 * expand-volume.moto.test.ts.
 */

const VOLUME_2 = 'vol-0aaaaaaaaaaaaaaaa';
const NOW = new Date('2025-06-01T12:00:00Z');

const ec2Mock = mockClient(EC2Client);
const ssmMock = mockClient(SSMClient);
const client = new EC2Client({ region: 'eu-west-1', maxAttempts: 1 });
const ssm = new SSMClient({ region: 'eu-west-1', maxAttempts: 1 });
const CONFIG: ExpandConfig = loadExpandConfig({});
const noSleep = { sleep: async () => {}, maxAttempts: 4 };
const deps = (config: Partial<ExpandConfig> = {}): ExpandDeps => ({
  ec2: client,
  ssm,
  config: { ...CONFIG, ...config },
  now: () => NOW,
  retry: noSleep,
});

/** The registry holds every node asked for, on INSTANCE with VOLUME. */
function registryHoldsEveryNode(): void {
  ssmMock.on(GetParameterCommand).callsFake((input: { Name: string }) => ({
    Parameter: { Name: input.Name, Value: registryEntry(input.Name.split('/').pop() as string) },
  }));
}

function modification(over: Partial<VolumeModification>): VolumeModification {
  return {
    VolumeId: VOLUME,
    ModificationState: 'modifying',
    OriginalSize: 100,
    TargetSize: 150,
    Progress: 0,
    StartTime: new Date(NOW.getTime() - 60_000),
    ...over,
  };
}

/** expand-volume asked to grow VOLUME on INSTANCE (what ExpandVolume sends), with `config` over the defaults. */
const expandTheVolume = (config: Partial<ExpandConfig> = {}) =>
  expandVolume({ instanceId: INSTANCE, volumeId: VOLUME }, deps(config));

/** DescribeVolumesModifications returns `mods` for the volume. */
function givenModifications(...mods: VolumeModification[]): void {
  ec2Mock.on(DescribeVolumesModificationsCommand).resolves({ VolumesModifications: mods });
}

/** One volume, no modification yet, snapshot and ModifyVolume succeed. */
function happyPath(vol: Volume = managedVolume()): void {
  mockExpandableVolume(ec2Mock, vol, { startTime: new Date(NOW.getTime() - 60_000) });
}

/**
 * expand-volume on a 150 GiB volume whose last modification (100 → 150 GiB) has completed, with
 * the filesystem `filesystemGiB` large and `usedGiB` used.
 */
function expandAfterCompletedModification(usedGiB: number, filesystemGiB: number) {
  happyPath(managedVolume({ Size: 150 }));
  givenModifications(modification({ ModificationState: 'completed', Progress: 100 }));
  return expandVolume(
    {
      instanceId: INSTANCE,
      volumeId: VOLUME,
      usedBytes: usedGiB * GIB,
      filesystemBytes: filesystemGiB * GIB,
    },
    deps(),
  );
}

/** The happy path, except that ModifyVolume fails with the AWS error `code`. */
function happyPathButModifyVolumeFails(code: string, message?: string): void {
  happyPath();
  ec2Mock.on(ModifyVolumeCommand).rejects(ec2Error(code, message));
}

const writes = () =>
  ec2Mock.commandCalls(ModifyVolumeCommand).length + ec2Mock.commandCalls(CreateSnapshotCommand).length;

beforeAll(() => {
  logger.setLogLevel('SILENT');
});

beforeEach(() => {
  ec2Mock.reset();
  ssmMock.reset();
  registryHoldsEveryNode();
});

afterEach(() => {
  vi.restoreAllMocks();
  metrics.clearDimensions();
  metrics.clearMetadata();
});

describe('expand-volume: which volume', () => {
  it('refuses a volume that is not tagged managed and changes nothing', async () => {
    happyPath(managedVolume({ Tags: tagList({ 'stemedb:node': 'db-1' }) }));
    const r = await expandTheVolume();
    expect(r.status).toBe('refused');
    expect(r.reason).toBe(
      `volume ${VOLUME} is not tagged stemedb:managed=true: only managed volumes are expanded`,
    );
    expect(writes()).toBe(0);
  });

  it('refuses a volume whose managed tag is not exactly "true"', async () => {
    happyPath(managedVolume({ Tags: tagList({ 'stemedb:managed': 'TRUE' }) }));
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'refused' });
    expect(r.reason).toContain('"TRUE", not "true"');
  });

  const attachmentRefusals: ReadonlyArray<{ name: string; attachment: Partial<Volume>; reason: string }> = [
    {
      name: 'refuses a managed volume that is not attached',
      attachment: { Attachments: [], State: 'available' },
      reason: `volume ${VOLUME} is not attached to any instance (expected ${INSTANCE})`,
    },
    {
      name: 'refuses a managed volume attached to another instance',
      attachment: { Attachments: [{ InstanceId: OTHER_INSTANCE, State: 'attached' }] },
      reason: `volume ${VOLUME} is attached to ${OTHER_INSTANCE}, not to ${INSTANCE}`,
    },
    {
      name: 'refuses a managed volume that is still attaching',
      attachment: { Attachments: [{ InstanceId: INSTANCE, State: 'attaching' }] },
      reason: `volume ${VOLUME} is attaching on ${INSTANCE}, not attached`,
    },
  ];
  it.each(attachmentRefusals.map((c) => [c.name, c] as const))(
    '%s',
    async (_name, { attachment, reason }) => {
      happyPath(managedVolume(attachment));
      const r = await expandTheVolume();
      expect(r).toMatchObject({ status: 'refused', reason });
      expect(writes()).toBe(0);
    },
  );

  it('refuses a volume that does not exist', async () => {
    ec2Mock.on(DescribeVolumesCommand).rejects(ec2Error('InvalidVolume.NotFound'));
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'refused', reason: `volume ${VOLUME} does not exist`, apiCalls: 1 });
  });

  it('finds the instance’s one managed volume by tag and attachment when no volumeId is given', async () => {
    happyPath();
    const r = await expandVolume({ instanceId: INSTANCE }, deps());
    expect(r).toMatchObject({ status: 'started', volumeId: VOLUME, node: 'db-1', targetSizeGiB: 150 });
    expect(ec2Mock.commandCalls(DescribeVolumesCommand)[0]?.args[0].input.Filters).toEqual([
      { Name: 'attachment.instance-id', Values: [INSTANCE] },
      { Name: 'tag:stemedb:managed', Values: ['true'] },
    ]);
  });

  it('refuses when the instance has no managed volume attached', async () => {
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [] });
    const r = await expandVolume({ instanceId: INSTANCE }, deps());
    expect(r).toMatchObject({
      status: 'refused',
      reason: `no volume tagged stemedb:managed=true is attached to ${INSTANCE}`,
      apiCalls: 1,
    });
  });

  it('refuses when the instance has two managed volumes, naming both', async () => {
    ec2Mock
      .on(DescribeVolumesCommand)
      .resolves({ Volumes: [managedVolume(), managedVolume({ VolumeId: VOLUME_2 })] });
    const r = await expandVolume({ instanceId: INSTANCE }, deps());
    expect(r.status).toBe('refused');
    expect(r.reason).toContain(
      `2 volumes tagged stemedb:managed=true are attached to ${INSTANCE} (${VOLUME}, ${VOLUME_2})`,
    );
    expect(writes()).toBe(0);
  });

  it('honours MANAGED_TAG_KEY, NODE_TAG_KEY, DEPLOYMENT_TAG_KEY, DEPLOYMENT and NODE_PARAMETER_PREFIX', async () => {
    happyPath(
      managedVolume({
        Tags: tagList({ 'acme:managed': 'true', 'acme:node': 'n7', 'acme:deployment': 'Acme' }),
      }),
    );
    const r = await expandTheVolume({
      managedTagKey: 'acme:managed',
      nodeTagKey: 'acme:node',
      deploymentTagKey: 'acme:deployment',
      deployment: 'Acme',
      nodeParameterPrefix: '/Acme/nodes/',
    });
    expect(r).toMatchObject({ status: 'started', node: 'n7' });
    expect(ssmMock.commandCalls(GetParameterCommand).map((c) => c.args[0].input)).toEqual([
      { Name: '/Acme/nodes/n7' },
    ]);
  });
});

describe('expand-volume: only a registered node of this deployment', () => {
  it('refuses a managed volume of another deployment and changes nothing', async () => {
    happyPath(
      managedVolume({
        Tags: tagList({ ...MANAGED_TAGS, 'stemedb:deployment': 'Other' }),
      }),
    );
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'refused',
      reason: `volume ${VOLUME} belongs to deployment "Other" (stemedb:deployment), not StemeDB: only this deployment's volumes are expanded`,
      apiCalls: 1,
    });
    expect(writes()).toBe(0);
    expect(ssmMock.commandCalls(GetParameterCommand)).toHaveLength(0);
  });

  it('refuses a managed volume without the deployment tag', async () => {
    happyPath(
      managedVolume({
        Tags: tagList({ 'stemedb:managed': 'true', 'stemedb:node': 'db-1' }),
      }),
    );
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'refused',
      reason: `volume ${VOLUME} is not tagged stemedb:deployment=StemeDB: only this deployment's volumes are expanded`,
    });
    expect(writes()).toBe(0);
  });

  it('picks the volume of this deployment when another deployment’s managed volume is attached too', async () => {
    happyPath();
    const foreign = managedVolume({
      VolumeId: VOLUME_2,
      Tags: tagList({ ...MANAGED_TAGS, 'stemedb:deployment': 'Other' }),
    });
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [foreign, managedVolume()] });
    const r = await expandVolume({ instanceId: INSTANCE }, deps());
    expect(r).toMatchObject({ status: 'started', volumeId: VOLUME });
    expect(ec2Mock.commandCalls(ModifyVolumeCommand).map((c) => c.args[0].input.VolumeId)).toEqual([VOLUME]);
  });

  it('refuses, naming the deployment, when the only managed volume attached is another deployment’s', async () => {
    const foreign = managedVolume({
      Tags: tagList({ 'stemedb:managed': 'true', 'stemedb:deployment': 'Other' }),
    });
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [foreign] });
    const r = await expandVolume({ instanceId: INSTANCE }, deps());
    expect(r.status).toBe('refused');
    expect(r.reason).toContain('belongs to deployment "Other"');
    expect(writes()).toBe(0);
  });

  it('refuses an instance that is not a registered node (no registry entry) and changes nothing', async () => {
    happyPath();
    ssmMock.on(GetParameterCommand).rejects(ssmError('ParameterNotFound'));
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'refused',
      node: 'db-1',
      reason: `${INSTANCE} is not a registered node of deployment StemeDB: no registry entry /StemeDB/nodes/db-1`,
      apiCalls: 2,
    });
    expect(writes()).toBe(0);
    expect(ssmMock.commandCalls(GetParameterCommand).map((c) => c.args[0].input)).toEqual([
      { Name: '/StemeDB/nodes/db-1' },
    ]);
  });

  it('refuses when the registry names another instance for the node', async () => {
    happyPath();
    ssmMock.on(GetParameterCommand).resolves({
      Parameter: { Value: registryEntry('db-1', { instanceId: OTHER_INSTANCE }) },
    });
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'refused',
      reason: `${INSTANCE} is not a registered node of deployment StemeDB: registry entry /StemeDB/nodes/db-1 names instance ${OTHER_INSTANCE}`,
    });
    expect(writes()).toBe(0);
  });

  it('refuses when the registry names another volume for the node', async () => {
    happyPath();
    ssmMock.on(GetParameterCommand).resolves({
      Parameter: { Value: registryEntry('db-1', { volumeId: VOLUME_2 }) },
    });
    const r = await expandTheVolume();
    expect(r.status).toBe('refused');
    expect(r.reason).toContain(`names volume ${VOLUME_2}, not ${VOLUME}`);
    expect(writes()).toBe(0);
  });

  it('refuses a registry entry that does not parse, or is another node’s', async () => {
    happyPath();
    for (const value of ['{not json', registryEntry('db-2')]) {
      ssmMock.on(GetParameterCommand).resolves({ Parameter: { Value: value } });
      const r = await expandTheVolume();
      expect(r.status, value).toBe('refused');
      expect(r.reason).toMatch(
        /^i-0123456789abcdef0 is not a registered node of deployment StemeDB: registry entry /,
      );
    }
    expect(writes()).toBe(0);
  });

  it('refuses a volume without a node tag, or with one that is not a node name, without reading the registry', async () => {
    for (const tags of [[], [{ Key: 'stemedb:node', Value: '../../x' }]]) {
      ec2Mock.reset();
      happyPath(
        managedVolume({
          Tags: [
            { Key: 'stemedb:managed', Value: 'true' },
            { Key: 'stemedb:deployment', Value: 'StemeDB' },
            ...tags,
          ],
        }),
      );
      const r = await expandTheVolume();
      expect(r.status).toBe('refused');
      expect(r.reason).toMatch(
        /is not a registered node of deployment StemeDB: volume .* (has no stemedb:node tag|which is not a node name)/,
      );
    }
    expect(ssmMock.commandCalls(GetParameterCommand)).toHaveLength(0);
    expect(writes()).toBe(0);
  });

  it('refuses in a dry run as it would for real', async () => {
    happyPath();
    ssmMock.on(GetParameterCommand).rejects(ssmError('ParameterNotFound'));
    const r = await expandVolume({ instanceId: INSTANCE, volumeId: VOLUME, dryRun: 'true' }, deps());
    expect(r.status).toBe('refused');
  });

  it('throws when the registry cannot be read (a fault, not a refusal), after retrying throttling', async () => {
    happyPath();
    ssmMock
      .on(GetParameterCommand)
      .rejectsOnce(ssmError('ThrottlingException'))
      .rejects(ssmError('AccessDeniedException'));
    await expect(expandVolume({ instanceId: INSTANCE, volumeId: VOLUME }, deps())).rejects.toMatchObject({
      name: 'AccessDeniedException',
    });
    expect(ssmMock.commandCalls(GetParameterCommand)).toHaveLength(2);
    expect(writes()).toBe(0);
  });
});

describe('expand-volume: the happy path', () => {
  it('reads the registry, snapshots with tags, modifies once, then lists older snapshots, in six API calls', async () => {
    happyPath();
    const r = await expandVolume(
      { instanceId: INSTANCE, volumeId: VOLUME, reason: 'critical alarm' },
      deps(),
    );
    expect(r).toEqual({
      status: 'started',
      volumeId: VOLUME,
      instanceId: INSTANCE,
      node: 'db-1',
      currentSizeGiB: 100,
      targetSizeGiB: 150,
      volumeType: 'gp3',
      snapshotId: 'snap-0123456789abcdef0',
      modificationState: 'modifying',
      reason: 'grow 100 → 150 GiB (50% growth)',
      retryAfter: '',
      capStatus: 'clear',
      capWarning: '',
      snapshotsDeleted: [],
      snapshotRetentionProblems: [],
      apiCalls: 6,
    });
    const snap = ec2Mock.commandCalls(CreateSnapshotCommand)[0]?.args[0].input;
    expect(snap?.VolumeId).toBe(VOLUME);
    expect(snap?.TagSpecifications).toEqual([
      {
        ResourceType: 'snapshot',
        Tags: tagList({ ...MANAGED_TAGS, 'stemedb:reason': 'expand-volume' }),
      },
    ]);
    expect(ec2Mock.commandCalls(ModifyVolumeCommand).map((c) => c.args[0].input)).toEqual([
      { VolumeId: VOLUME, Size: 150 },
    ]);
  });

  it('takes the snapshot before the modification', async () => {
    happyPath();
    await expandTheVolume();
    const order = ec2Mock.calls().map((c) => c.args[0].constructor.name);
    expect(order.indexOf('CreateSnapshotCommand')).toBeLessThan(order.indexOf('ModifyVolumeCommand'));
  });

  it('takes no snapshot when SNAPSHOT_BEFORE_EXPAND is false', async () => {
    happyPath();
    const r = await expandTheVolume({ snapshotBeforeExpand: false });
    expect(r).toMatchObject({ status: 'started', snapshotId: '', apiCalls: 4 });
    expect(ec2Mock.commandCalls(CreateSnapshotCommand)).toHaveLength(0);
  });

  it('sizes from the disk report to bring free space above the warning level', async () => {
    happyPath(managedVolume({ Size: 200 }));
    const r = await expandVolume(
      {
        instanceId: INSTANCE,
        volumeId: VOLUME,
        usedBytes: String(190 * GIB),
        filesystemBytes: String(196 * GIB),
      },
      deps({ growPercent: 10, minGrowGiB: 1 }),
    );
    // 190 GiB / (1 - 20%) = 237.5 GiB of filesystem, × 200/196 for overhead = 242.3 → 243
    expect(r).toMatchObject({ status: 'started', currentSizeGiB: 200, targetSizeGiB: 243 });
    expect(r.reason).toBe('grow 200 → 243 GiB (free space back above 20% for the bytes in use now)');
  });

  it('refuses at the cap naming it and touches nothing', async () => {
    happyPath(managedVolume({ Size: 4096 }));
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'refused',
      currentSizeGiB: 4096,
      reason: 'the volume is 4096 GiB, at the cap: maxSizeGiB (4096 GiB)',
    });
    expect(writes()).toBe(0);
  });

  it('in a dry run reports the target and makes no snapshot and no modification', async () => {
    happyPath();
    const r = await expandVolume({ instanceId: INSTANCE, volumeId: VOLUME, dryRun: 'true' }, deps());
    expect(r).toMatchObject({
      status: 'dry-run',
      targetSizeGiB: 150,
      reason: 'would grow 100 → 150 GiB (50% growth)',
      apiCalls: 3,
    });
    expect(writes()).toBe(0);
  });
});

describe('expand-volume: modifications already there', () => {
  it('reuses an in-flight modification that reaches the wanted size, without a new call', async () => {
    // During a modification DescribeVolumes may already report the target size: sizing uses OriginalSize.
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [managedVolume({ Size: 150 })] });
    givenModifications(modification({ ModificationState: 'optimizing', Progress: 40 }));
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'reused',
      currentSizeGiB: 100,
      targetSizeGiB: 150,
      modificationState: 'optimizing',
      snapshotId: '',
      apiCalls: 3,
    });
    expect(writes()).toBe(0);
  });

  it('defers when the in-flight modification is smaller than wanted, with retryAfter', async () => {
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [managedVolume({ Size: 110 })] });
    const start = new Date(NOW.getTime() - 3600_000);
    givenModifications(modification({ TargetSize: 110, StartTime: start, ModificationState: 'optimizing' }));
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'deferred',
      targetSizeGiB: 150,
      modificationState: 'optimizing',
      retryAfter: new Date(start.getTime() + 6 * 3600_000).toISOString(),
    });
    expect(r.reason).toContain(
      'cannot expand before the modification 100 → 110 GiB (optimizing, started 2025-06-01T11:00:00.000Z) is completed',
    );
    expect(writes()).toBe(0);
  });

  it('reuses an in-flight modification at the cap as the last growth possible', async () => {
    ec2Mock.on(DescribeVolumesCommand).resolves({ Volumes: [managedVolume({ Size: 4096 })] });
    givenModifications(modification({ OriginalSize: 4000, TargetSize: 4096 }));
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'reused', targetSizeGiB: 4096 });
    expect(writes()).toBe(0);
  });

  it('tries again after a failed modification, saying so', async () => {
    happyPath();
    givenModifications(modification({ ModificationState: 'failed', StatusMessage: 'Internal error' }));
    const r = await expandTheVolume();
    expect(r.status).toBe('started');
    expect(r.reason).toContain('failed, started 2025-06-01T11:59:00.000Z): Internal error; trying again');
    expect(ec2Mock.commandCalls(ModifyVolumeCommand)).toHaveLength(1);
  });

  it('does not grow again when a completed modification has not been grown into yet', async () => {
    const r = await expandAfterCompletedModification(95, 98);
    expect(r).toMatchObject({
      status: 'reused',
      currentSizeGiB: 100,
      targetSizeGiB: 150,
      modificationState: 'completed',
    });
    expect(writes()).toBe(0);
  });

  it('grows again once the filesystem has used a completed modification', async () => {
    const r = await expandAfterCompletedModification(140, 147);
    expect(r).toMatchObject({ status: 'started', currentSizeGiB: 150, targetSizeGiB: 225 });
  });

  it('picks the most recent of several modifications (moto returns the history)', async () => {
    happyPath(managedVolume({ Size: 150 }));
    givenModifications(
      modification({ ModificationState: 'optimizing', StartTime: new Date(NOW.getTime() - 9e6) }),
      modification({ ModificationState: 'completed', StartTime: new Date(NOW.getTime() - 1e6) }),
    );
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'started', targetSizeGiB: 225 });
  });
});

describe('expand-volume: AWS refusals and throttling', () => {
  it('defers on VolumeModificationRateExceeded with one ModifyVolume call and no retry', async () => {
    happyPathButModifyVolumeFails('VolumeModificationRateExceeded', 'You have exceeded the rate');
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'deferred',
      retryAfter: new Date(NOW.getTime() + 15 * 60_000).toISOString(),
      apiCalls: 6,
    });
    expect(r.reason).toContain('VolumeModificationRateExceeded');
    expect(ec2Mock.commandCalls(ModifyVolumeCommand)).toHaveLength(1);
  });

  it('defers on IncorrectModificationState when nothing large enough is in flight', async () => {
    happyPathButModifyVolumeFails('IncorrectModificationState');
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'deferred', apiCalls: 7 });
    expect(r.reason).toContain('IncorrectModificationState');
    expect(ec2Mock.commandCalls(ModifyVolumeCommand)).toHaveLength(1);
  });

  it('reuses a concurrent modification found after IncorrectModificationState', async () => {
    happyPathButModifyVolumeFails('IncorrectModificationState');
    ec2Mock
      .on(DescribeVolumesModificationsCommand)
      .rejectsOnce(ec2Error('InvalidVolumeModification.NotFound'))
      .resolves({ VolumesModifications: [modification({ TargetSize: 150 })] });
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'reused', targetSizeGiB: 150, modificationState: 'modifying' });
    expect(ec2Mock.commandCalls(ModifyVolumeCommand)).toHaveLength(1);
  });

  it('retries throttling and then succeeds, counting every attempt', async () => {
    happyPath();
    ec2Mock
      .on(DescribeVolumesCommand)
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .resolves({ Volumes: [managedVolume()] });
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'started', apiCalls: 8 });
  });

  it('gives up after the bounded number of throttled attempts and surfaces the error', async () => {
    happyPath();
    ec2Mock.on(DescribeVolumesCommand).rejects(ec2Error('RequestLimitExceeded'));
    await expect(expandVolume({ instanceId: INSTANCE, volumeId: VOLUME }, deps())).rejects.toMatchObject({
      name: 'RequestLimitExceeded',
    });
    expect(ec2Mock.commandCalls(DescribeVolumesCommand)).toHaveLength(noSleep.maxAttempts);
    expect(writes()).toBe(0);
  });

  it('throws other faults (e.g. UnauthorizedOperation) without retrying', async () => {
    happyPathButModifyVolumeFails('UnauthorizedOperation');
    await expect(expandVolume({ instanceId: INSTANCE, volumeId: VOLUME }, deps())).rejects.toMatchObject({
      name: 'UnauthorizedOperation',
    });
    expect(ec2Mock.commandCalls(ModifyVolumeCommand)).toHaveLength(1);
  });
});

describe('expand-volume: duplicate invocation', () => {
  it('makes one ModifyVolume call when called twice with the same request', async () => {
    // A stateful fake: after ModifyVolume, DescribeVolumes reports the new size and the
    // modification is in flight, as on AWS.
    let size = 100;
    let mods: VolumeModification[] = [];
    ec2Mock.on(DescribeVolumesCommand).callsFake(() => ({ Volumes: [managedVolume({ Size: size })] }));
    ec2Mock.on(DescribeVolumesModificationsCommand).callsFake(() => {
      if (mods.length === 0) throw ec2Error('InvalidVolumeModification.NotFound');
      return { VolumesModifications: mods };
    });
    ec2Mock.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0123456789abcdef0' });
    ec2Mock.on(ModifyVolumeCommand).callsFake((input: { Size: number }) => {
      mods = [modification({ OriginalSize: size, TargetSize: input.Size })];
      size = input.Size;
      return { VolumeModification: mods[0] };
    });
    const request = {
      instanceId: INSTANCE,
      reason: 'critical alarm',
      usedBytes: '96636764160',
      filesystemBytes: '105226698752',
    };
    const first = await expandVolume(request, deps());
    const second = await expandVolume(request, deps());
    expect(first).toMatchObject({ status: 'started', targetSizeGiB: 150 });
    expect(second).toMatchObject({ status: 'reused', targetSizeGiB: 150, currentSizeGiB: 100 });
    expect(ec2Mock.commandCalls(ModifyVolumeCommand)).toHaveLength(1);
    expect(ec2Mock.commandCalls(CreateSnapshotCommand)).toHaveLength(1);
  });
});

describe('expand-volume: input validation', () => {
  const hostile: [string, unknown][] = [
    ['an instance ID with a shell command', { instanceId: 'i-123; rm -rf /' }],
    ['an instance ID with $(...)', { instanceId: 'i-$(reboot)' }],
    ['an instance ID with backticks', { instanceId: 'i-`id`' }],
    ['an instance ID with a newline', { instanceId: 'i-0123456789abcdef0\nrm' }],
    ['an instance ID with a trailing space', { instanceId: 'i-0123456789abcdef0 ' }],
    ['an empty instance ID', { instanceId: '' }],
    ['a missing instance ID', {}],
    ['a numeric instance ID', { instanceId: 123 }],
    ['a volume ID with a shell command', { instanceId: INSTANCE, volumeId: 'vol-123; rm -rf /' }],
    ['a volume ID with ..', { instanceId: INSTANCE, volumeId: '../vol-0123456789abcdef0' }],
    ['an upper-case volume ID', { instanceId: INSTANCE, volumeId: 'vol-0123456789ABCDEF0' }],
    ['a reason with a newline', { instanceId: INSTANCE, reason: 'ok\nrm -rf /' }],
    ['a reason with $(...)', { instanceId: INSTANCE, reason: '$(reboot)' }],
    ['dryRun "yes"', { instanceId: INSTANCE, dryRun: 'yes' }],
    ['usedBytes in exponent form', { instanceId: INSTANCE, usedBytes: '1e9' }],
    ['negative usedBytes', { instanceId: INSTANCE, usedBytes: -1 }],
    ['usedBytes with a command', { instanceId: INSTANCE, usedBytes: '12; rm' }],
    ['a fractional filesystemBytes', { instanceId: INSTANCE, filesystemBytes: 1.5 }],
    ['a zero filesystemBytes', { instanceId: INSTANCE, filesystemBytes: '0' }],
    ['usedBytes above filesystemBytes', { instanceId: INSTANCE, usedBytes: 10, filesystemBytes: 5 }],
    ['an unknown field', { instanceId: INSTANCE, volumeID: VOLUME }],
    ['a string payload', 'i-0123456789abcdef0'],
    ['null', null],
    ['an array', [INSTANCE]],
  ];
  for (const [name, event] of hostile) {
    it(`returns invalid for ${name} and makes no AWS call`, async () => {
      happyPath();
      const r = await expandVolume(event, deps());
      expect(r.status).toBe('invalid');
      expect(r.apiCalls).toBe(0);
      expect(ec2Mock.calls()).toHaveLength(0);
    });
  }

  it('names the bad field in the reason', () => {
    expect(parseExpandInput({ instanceId: 'i-123; rm -rf /' })).toEqual({
      ok: false,
      reason: 'instanceId is "i-123; rm -rf /"; expected i- and 8 or 17 hex digits',
    });
    expect(parseExpandInput({ instanceId: INSTANCE, volumeID: VOLUME })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^"volumeID" is not an input field/),
    });
  });

  it('accepts the strings the Automation document passes', () => {
    expect(
      parseExpandInput({
        instanceId: INSTANCE,
        volumeId: '',
        reason: 'alarm StemeDB-db-1-disk-critical',
        dryRun: 'false',
        usedBytes: '96636764160',
        filesystemBytes: '',
      }),
    ).toEqual({
      ok: true,
      request: {
        instanceId: INSTANCE,
        volumeId: undefined,
        reason: 'alarm StemeDB-db-1-disk-critical',
        dryRun: false,
        usedBytes: 96_636_764_160,
        filesystemBytes: undefined,
      },
    });
  });

  it('accepts 8-digit legacy IDs', () => {
    expect(parseExpandInput({ instanceId: 'i-0123abcd', volumeId: 'vol-0123abcd', dryRun: true }).ok).toBe(
      true,
    );
  });
});

/** A pre-expansion snapshot of VOLUME taken `daysAgo` days before NOW, as DescribeSnapshots returns it. */
function preExpansion(id: string, daysAgo: number, over: Partial<Snapshot> = {}): Snapshot {
  return {
    SnapshotId: id,
    VolumeId: VOLUME,
    State: 'completed',
    StartTime: new Date(NOW.getTime() - daysAgo * 86_400_000),
    Tags: tagList({ ...MANAGED_TAGS, 'stemedb:reason': 'expand-volume' }),
    ...over,
  };
}

/**
 * DescribeSnapshots lists pre-expansion snapshots of the volume taken `daysAgo[i]` days ago,
 * with IDs numbered from `firstNumber` (snap-00000000000000000, snap-00000000000000001, ...).
 */
function givenPreExpansionSnapshots(daysAgo: readonly number[], firstNumber = 0): void {
  ec2Mock.on(DescribeSnapshotsCommand).resolves({
    Snapshots: daysAgo.map((days, i) =>
      preExpansion(`snap-${String(firstNumber + i).padStart(17, '0')}`, days),
    ),
  });
}

const NEW_SNAPSHOT = 'snap-0123456789abcdef0';
const deletedIds = () => ec2Mock.commandCalls(DeleteSnapshotCommand).map((c) => c.args[0].input.SnapshotId);

describe('expand-volume: retention of the pre-expansion snapshots', () => {
  it('keeps the newest 3 completed ones besides the new one and deletes the older ones, oldest first', async () => {
    happyPath();
    ec2Mock.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        preExpansion(NEW_SNAPSHOT, 0, { State: 'pending' }),
        preExpansion('snap-00000000000000001', 50),
        preExpansion('snap-00000000000000002', 40),
        preExpansion('snap-00000000000000003', 30),
        preExpansion('snap-00000000000000004', 20),
        preExpansion('snap-00000000000000005', 10),
        preExpansion('snap-0000000000000000a', 60, { State: 'pending' }),
        preExpansion('snap-0000000000000000b', 70, { State: 'error' }),
      ],
    });
    const r = await expandTheVolume();
    expect(r).toMatchObject({
      status: 'started',
      snapshotId: NEW_SNAPSHOT,
      snapshotsDeleted: ['snap-00000000000000001', 'snap-00000000000000002'],
      snapshotRetentionProblems: [],
    });
    expect(deletedIds()).toEqual(['snap-00000000000000001', 'snap-00000000000000002']);
    expect(ec2Mock.commandCalls(DescribeSnapshotsCommand)[0]?.args[0].input).toEqual({
      OwnerIds: ['self'],
      Filters: [
        { Name: 'volume-id', Values: [VOLUME] },
        { Name: 'tag:stemedb:managed', Values: ['true'] },
        { Name: 'tag:stemedb:deployment', Values: ['StemeDB'] },
        { Name: 'tag:stemedb:reason', Values: ['expand-volume'] },
      ],
      MaxResults: 100,
      NextToken: undefined,
    });
    const order = ec2Mock.calls().map((c) => c.args[0].constructor.name);
    expect(order.indexOf('DescribeSnapshotsCommand')).toBeGreaterThan(order.indexOf('ModifyVolumeCommand'));
  });

  it('reads every page of DescribeSnapshots', async () => {
    happyPath();
    ec2Mock
      .on(DescribeSnapshotsCommand)
      .resolvesOnce({
        Snapshots: [preExpansion('snap-00000000000000001', 9), preExpansion('snap-00000000000000002', 8)],
        NextToken: 'page-2',
      })
      .resolvesOnce({
        Snapshots: [preExpansion('snap-00000000000000003', 7), preExpansion('snap-00000000000000004', 6)],
        NextToken: 'page-3',
      })
      .resolves({ Snapshots: [preExpansion('snap-00000000000000005', 5)] });
    const r = await expandTheVolume();
    expect(ec2Mock.commandCalls(DescribeSnapshotsCommand).map((c) => c.args[0].input.NextToken)).toEqual([
      undefined,
      'page-2',
      'page-3',
    ]);
    expect(r.snapshotsDeleted).toEqual(['snap-00000000000000001', 'snap-00000000000000002']);
  });

  it('never deletes a snapshot without this deployment’s tags or the purpose tag, even if EC2 lists it', async () => {
    happyPath();
    const tagsWithout = (key: string) => preExpansion('x', 0).Tags?.filter((t) => t.Key !== key);
    ec2Mock.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        preExpansion('snap-00000000000000001', 90, { Tags: tagsWithout('stemedb:reason') }),
        preExpansion('snap-00000000000000002', 90, {
          Tags: [...(tagsWithout('stemedb:deployment') ?? []), { Key: 'stemedb:deployment', Value: 'Other' }],
        }),
        preExpansion('snap-00000000000000003', 90, { Tags: tagsWithout('stemedb:managed') }),
        preExpansion('snap-00000000000000004', 90, { VolumeId: VOLUME_2 }),
        preExpansion('snap-00000000000000005', 3),
        preExpansion('snap-00000000000000006', 2),
        preExpansion('snap-00000000000000007', 1),
      ],
    });
    const r = await expandTheVolume();
    expect(r.snapshotsDeleted).toEqual([]);
    expect(ec2Mock.commandCalls(DeleteSnapshotCommand)).toHaveLength(0);
  });

  it('with SNAPSHOTS_DELETE_AFTER_DAYS keeps the older ones until they are that old', async () => {
    happyPath();
    givenPreExpansionSnapshots([5, 4, 3, 2, 1, 40, 31, 29], 10);
    const r = await expandTheVolume({ snapshotsKept: 1, snapshotsDeleteAfterDays: 30 });
    expect(r.snapshotsDeleted).toEqual(['snap-00000000000000015', 'snap-00000000000000016']);
  });

  it('keeps a snapshot used by an AMI (InvalidSnapshot.InUse), says so, and deletes the next one', async () => {
    happyPath();
    givenPreExpansionSnapshots([50, 40, 3, 2, 1]);
    ec2Mock
      .on(DeleteSnapshotCommand, { SnapshotId: 'snap-00000000000000000' })
      .rejects(
        ec2Error(
          'InvalidSnapshot.InUse',
          'The snapshot snap-00000000000000000 is currently in use by ami-0123',
        ),
      );
    const r = await expandTheVolume();
    expect(r.status).toBe('started');
    expect(r.snapshotsDeleted).toEqual(['snap-00000000000000001']);
    expect(r.snapshotRetentionProblems).toEqual([
      'kept snap-00000000000000000: it is in use (by an AMI); deregister the image to let it go',
    ]);
  });

  it('skips a snapshot already gone (InvalidSnapshot.NotFound) without a problem', async () => {
    happyPath();
    givenPreExpansionSnapshots([50, 3, 2, 1]);
    ec2Mock.on(DeleteSnapshotCommand).rejects(ec2Error('InvalidSnapshot.NotFound'));
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'started', snapshotsDeleted: [], snapshotRetentionProblems: [] });
  });

  it('retries a throttled DeleteSnapshot, and past the retries stops deleting for this run, not failing', async () => {
    happyPath();
    givenPreExpansionSnapshots([60, 50, 40, 3, 2, 1]);
    ec2Mock
      .on(DeleteSnapshotCommand)
      .rejectsOnce(ec2Error('RequestLimitExceeded'))
      .resolvesOnce({})
      .rejects(ec2Error('RequestLimitExceeded'));
    const r = await expandTheVolume();
    expect(r.status).toBe('started');
    expect(r.snapshotsDeleted).toEqual(['snap-00000000000000000']);
    expect(r.snapshotRetentionProblems).toEqual([
      expect.stringMatching(/^could not delete snap-00000000000000001: RequestLimitExceeded/),
      'stopped deleting for this run (throttled); the rest go at the next expansion',
    ]);
    // 2 attempts for the first, maxAttempts for the second, none for the third.
    expect(ec2Mock.commandCalls(DeleteSnapshotCommand)).toHaveLength(2 + noSleep.maxAttempts);
  });

  it('reports a refused deletion (UnauthorizedOperation) and goes on with the next snapshot', async () => {
    happyPath();
    givenPreExpansionSnapshots([50, 40, 3, 2, 1]);
    ec2Mock
      .on(DeleteSnapshotCommand, { SnapshotId: 'snap-00000000000000000' })
      .rejects(ec2Error('UnauthorizedOperation', 'You are not authorized'));
    const r = await expandTheVolume();
    expect(r.snapshotsDeleted).toEqual(['snap-00000000000000001']);
    expect(r.snapshotRetentionProblems).toEqual([
      'could not delete snap-00000000000000000: UnauthorizedOperation: You are not authorized',
    ]);
  });

  it('still reports the expansion when the snapshots cannot be listed', async () => {
    happyPath();
    ec2Mock.on(DescribeSnapshotsCommand).rejects(ec2Error('UnauthorizedOperation', 'denied'));
    const r = await expandTheVolume();
    expect(r).toMatchObject({ status: 'started', snapshotsDeleted: [] });
    expect(r.snapshotRetentionProblems).toEqual([
      `could not list the pre-expansion snapshots of ${VOLUME}: UnauthorizedOperation: denied`,
    ]);
  });

  it(`deletes at most ${MAX_DELETIONS_PER_RUN} a run, the oldest, and says the rest wait`, async () => {
    happyPath();
    givenPreExpansionSnapshots(Array.from({ length: 30 }, (_, i) => 100 - i));
    const r = await expandTheVolume();
    expect(r.snapshotsDeleted).toHaveLength(MAX_DELETIONS_PER_RUN);
    expect(r.snapshotsDeleted[0]).toBe(`snap-${'0'.repeat(17)}`);
    expect(r.snapshotRetentionProblems).toEqual([
      `27 pre-expansion snapshots of ${VOLUME} are past retention; deleting the ${MAX_DELETIONS_PER_RUN} oldest now, the rest at the next expansion`,
    ]);
  });

  it('applies no retention without a new snapshot: SNAPSHOT_BEFORE_EXPAND=false, a dry run, a refusal', async () => {
    happyPath();
    ec2Mock
      .on(DescribeSnapshotsCommand)
      .resolves({ Snapshots: [preExpansion('snap-00000000000000001', 90)] });
    await expandTheVolume({ snapshotBeforeExpand: false });
    await expandVolume({ instanceId: INSTANCE, volumeId: VOLUME, dryRun: true }, deps());
    await expandTheVolume({ maxSizeGiB: 100 });
    expect(ec2Mock.commandCalls(DescribeSnapshotsCommand)).toHaveLength(0);
    expect(ec2Mock.commandCalls(DeleteSnapshotCommand)).toHaveLength(0);
  });
});

describe('expand-volume: early warning near the cap', () => {
  it.each([
    ['far from the cap', 100, 4096, 'clear', ''],
    [
      'within 25% of maxSizeGiB after growing',
      2048,
      4096,
      'near-cap',
      'at 3072 GiB the volume is within 25% of its cap, maxSizeGiB (4096 GiB) (1024 GiB left): the next expansion can only grow it to the cap, and the one after is refused; move the data to a larger volume (AddDataVolume, runbook §5B) or raise the cap',
    ],
    [
      'at the cap after a clamped growth',
      3000,
      4096,
      'at-cap',
      'at 4096 GiB the volume is at its cap, maxSizeGiB (4096 GiB): the next expansion will be refused; move the data to a larger volume (AddDataVolume, runbook §5B) or raise the cap',
    ],
    [
      'near a small cap, with one more full growth left',
      100,
      200,
      'near-cap',
      'at 150 GiB the volume is within 25% of its cap, maxSizeGiB (200 GiB) (50 GiB left): the next expansion can only grow it to the cap, and the one after is refused; move the data to a larger volume (AddDataVolume, runbook §5B) or raise the cap',
    ],
  ] as const)('%s: %s GiB, cap %s → %s', async (_what, size, cap, capStatus, capWarning) => {
    happyPath(managedVolume({ Size: size }));
    const r = await expandTheVolume({ maxSizeGiB: cap });
    expect(r).toMatchObject({ status: 'started', capStatus, capWarning });
  });

  it('says what the next expansion still does when it can grow in full', async () => {
    happyPath(managedVolume({ Size: 100 }));
    const r = await expandTheVolume({ maxSizeGiB: 1000, warnWithinPercent: 90 });
    expect(r.capStatus).toBe('near-cap');
    expect(r.capWarning).toContain('(850 GiB left): the next expansion grows it to 225 GiB');
  });

  it('warns at the cap only with WARN_WITHIN_PERCENT=0', async () => {
    happyPath(managedVolume({ Size: 3000 }));
    const near = await expandTheVolume({ maxSizeGiB: 4500, warnWithinPercent: 0 });
    expect(near).toMatchObject({ targetSizeGiB: 4500, capStatus: 'at-cap' });
    happyPath(managedVolume({ Size: 2000 }));
    const far = await expandTheVolume({ maxSizeGiB: 4500, warnWithinPercent: 0 });
    expect(far).toMatchObject({ targetSizeGiB: 3000, capStatus: 'clear', capWarning: '' });
  });

  it('warns in a dry run and when reusing an in-flight modification near the cap, not on a refusal', async () => {
    happyPath(managedVolume({ Size: 3000 }));
    const dry = await expandVolume({ instanceId: INSTANCE, volumeId: VOLUME, dryRun: true }, deps());
    expect(dry).toMatchObject({ status: 'dry-run', capStatus: 'at-cap' });
    givenModifications(modification({ OriginalSize: 3000, TargetSize: 4096 }));
    const reused = await expandTheVolume();
    expect(reused).toMatchObject({ status: 'reused', targetSizeGiB: 4096, capStatus: 'at-cap' });
    happyPath(managedVolume({ Size: 4096 }));
    const refused = await expandTheVolume();
    expect(refused).toMatchObject({ status: 'refused', capStatus: 'unchecked', capWarning: '' });
  });
});

describe('expand-volume: configuration', () => {
  it('defaults to the runbook values', () => {
    // The values a deployment gets when its config sets none (expected, not computed: a fixture).
    expect(loadExpandConfig({})).toEqual(RUNBOOK_DEFAULTS);
  });

  it('reads every variable', () => {
    expect(
      loadExpandConfig({
        GROW_PERCENT: '25',
        MIN_GROW_GIB: '5',
        MAX_SIZE_GIB: '16384',
        SNAPSHOT_BEFORE_EXPAND: 'false',
        SNAPSHOTS_KEPT: '5',
        SNAPSHOTS_DELETE_AFTER_DAYS: '30',
        WARN_WITHIN_PERCENT: '10',
        WARNING_FREE_PERCENT: '12.5',
        MANAGED_TAG_KEY: 'acme:managed',
        NODE_TAG_KEY: 'acme:node',
        DEPLOYMENT_TAG_KEY: 'acme:deployment',
        DEPLOYMENT: 'Acme',
        NODE_PARAMETER_PREFIX: '/acme/registry/',
      }),
    ).toEqual({
      growPercent: 25,
      minGrowGiB: 5,
      maxSizeGiB: 16_384,
      snapshotBeforeExpand: false,
      snapshotsKept: 5,
      snapshotsDeleteAfterDays: 30,
      warnWithinPercent: 10,
      warningFreePercent: 12.5,
      managedTagKey: 'acme:managed',
      nodeTagKey: 'acme:node',
      deploymentTagKey: 'acme:deployment',
      deployment: 'Acme',
      nodeParameterPrefix: '/acme/registry/',
    });
  });

  it('rejects bad retention and warning values at cold start, naming them', () => {
    expect(() =>
      loadExpandConfig({
        SNAPSHOTS_KEPT: '0',
        SNAPSHOTS_DELETE_AFTER_DAYS: '3651',
        WARN_WITHIN_PERCENT: '101',
      }),
    ).toThrow(
      [
        'expand-volume configuration is invalid:',
        '  - SNAPSHOTS_KEPT is "0"; expected a whole number from 1 to 1000',
        '  - SNAPSHOTS_DELETE_AFTER_DAYS is "3651"; expected a whole number of days from 0 to 3650',
        '  - WARN_WITHIN_PERCENT is "101"; expected a whole number from 0 to 100',
      ].join('\n'),
    );
  });

  it('derives the registry prefix from DEPLOYMENT', () => {
    expect(loadExpandConfig({ DEPLOYMENT: 'Blue' }).nodeParameterPrefix).toBe('/Blue/nodes/');
  });

  it('rejects bad values at cold start, naming every variable', () => {
    expect(() =>
      loadExpandConfig({
        GROW_PERCENT: '0',
        MIN_GROW_GIB: 'ten',
        MAX_SIZE_GIB: '70000',
        SNAPSHOT_BEFORE_EXPAND: 'yes',
        WARNING_FREE_PERCENT: '100',
        MANAGED_TAG_KEY: 'aws:managed',
        NODE_TAG_KEY: 'node;rm',
        DEPLOYMENT_TAG_KEY: 'aws:deployment',
        DEPLOYMENT: 'Stem eDB',
        NODE_PARAMETER_PREFIX: 'nodes',
      }),
    ).toThrow(
      [
        'expand-volume configuration is invalid:',
        '  - DEPLOYMENT is "Stem eDB"; expected a prefix: a letter and up to 19 letters and digits',
        '  - GROW_PERCENT is "0"; expected a whole number from 1 to 1000',
        '  - MIN_GROW_GIB is "ten"; expected a whole number of GiB from 1 to 65536',
        '  - MAX_SIZE_GIB is "70000"; expected a whole number of GiB from 1 to 65536',
        '  - SNAPSHOT_BEFORE_EXPAND is "yes"; expected true or false',
        '  - WARNING_FREE_PERCENT is "100"; expected a number above 0 and below 100, such as 20',
        '  - MANAGED_TAG_KEY is "aws:managed"; expected a tag key of 1-128 letters, digits, spaces and _.:/=+-@, not starting with "aws:"',
        '  - NODE_TAG_KEY is "node;rm"; expected a tag key of 1-128 letters, digits, spaces and _.:/=+-@, not starting with "aws:"',
        '  - DEPLOYMENT_TAG_KEY is "aws:deployment"; expected a tag key of 1-128 letters, digits, spaces and _.:/=+-@, not starting with "aws:"',
        '  - NODE_PARAMETER_PREFIX is "nodes"; expected a parameter path /<path>/',
      ].join('\n'),
    );
  });
});

describe('expand-volume: handler', () => {
  it('publishes one metric named for the outcome, with the node dimension, and flushes', async () => {
    happyPath();
    const addMetric = vi.spyOn(metrics, 'addMetric');
    const addDimension = vi.spyOn(metrics, 'addDimension');
    const publish = vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
    const r = await handler({ instanceId: INSTANCE, volumeId: VOLUME });
    expect(r.status).toBe('started');
    expect(addMetric).toHaveBeenCalledWith('ExpansionStarted', 'Count', 1);
    expect(addDimension).toHaveBeenCalledWith('node', 'db-1');
    expect(publish).toHaveBeenCalledTimes(1);
  });

  it('publishes ExpansionInvalid for a hostile payload', async () => {
    const addMetric = vi.spyOn(metrics, 'addMetric');
    vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
    const r = await handler({ instanceId: 'i-123; rm -rf /' });
    expect(r.status).toBe('invalid');
    expect(addMetric).toHaveBeenCalledWith('ExpansionInvalid', 'Count', 1);
  });

  it('rethrows a fault and still flushes metrics', async () => {
    ec2Mock.on(DescribeVolumesCommand).rejects(ec2Error('UnauthorizedOperation'));
    const addMetric = vi.spyOn(metrics, 'addMetric');
    const publish = vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
    await expect(handler({ instanceId: INSTANCE, volumeId: VOLUME })).rejects.toMatchObject({
      name: 'UnauthorizedOperation',
    });
    expect(addMetric).toHaveBeenCalledWith('ExpansionError', 'Count', 1);
    expect(publish).toHaveBeenCalledTimes(1);
  });
});
