import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig, STACK_RESOURCE_LIMIT, stackResourceCount } from '../lib/config';
import { agentNamespace } from '../lib/disk-metrics-agent';
import { type SynthResult, synthStack, TWO_NODES_FILE } from './support/synth';

const twoNodes = JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')) as Record<string, unknown>;
const DB1 = 'i-0123456789abcdef0';
const DB2 = 'i-0fedcba9876543210';
/** The two nodes of the fixture, by name and instance. */
const TWO_NODES = [
  ['db-1', DB1],
  ['db-2', DB2],
] as const;

type Resource = {
  Type: string;
  Properties: Record<string, unknown>;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
};

function alarmNamed(result: SynthResult, name: string): Record<string, unknown> {
  const alarms = result.template.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: name } });
  const found = Object.values(alarms) as Resource[];
  expect(found, `alarm ${name}`).toHaveLength(1);
  return (found[0] as Resource).Properties;
}

type MetricQuery = {
  Id: string;
  Expression?: string;
  MetricStat?: {
    Metric: { MetricName: string; Namespace: string; Dimensions: unknown[] };
    Period: number;
    Stat: string;
  };
};

describe('two-node stack', () => {
  let r: SynthResult;
  beforeAll(() => {
    r = synthStack(twoNodes);
  });

  it('creates one data volume, for the node that has dataVolume', () => {
    r.template.resourceCountIs('AWS::EC2::Volume', 1);
  });

  it('is the single-stack layout while fleet.shards is 0: one dashboard, no exports, no node stack', () => {
    r.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const outputs = Object.values(r.template.toJSON().Outputs ?? {}) as Array<{ Export?: { Name: string } }>;
    const exported = outputs.map((o) => o.Export?.Name).filter((n) => n !== undefined);
    // The stack outputs' own exports only: not the three the node stacks import.
    expect(exported.filter((n) => n.startsWith('StemeDB-Disk-'))).toEqual([]);
    expect(exported).toContain('StemeDB-NotificationTopicArn');
    expect(r.app.node.children.filter((c) => c.node.id.startsWith('StemeDB-Disk-Nodes-'))).toEqual([]);
  });

  it('encrypts the volume with the customer-managed key and uses the configured type and performance', () => {
    r.template.hasResourceProperties('AWS::EC2::Volume', {
      AvailabilityZone: 'eu-west-1a',
      Encrypted: true,
      KmsKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] },
      Size: 100,
      VolumeType: 'gp3',
      Iops: 6000,
      Throughput: 250,
    });
  });

  it('retains the volume on delete and on replacement', () => {
    r.template.hasResource('AWS::EC2::Volume', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('tags the volume managed, with its node and with this deployment, for tag-scoped IAM', () => {
    r.template.hasResourceProperties('AWS::EC2::Volume', {
      Tags: Match.arrayWith([
        { Key: 'stemedb:deployment', Value: 'StemeDB' },
        { Key: 'stemedb:managed', Value: 'true' },
        { Key: 'stemedb:node', Value: 'db-1' },
      ]),
    });
  });

  it('attaches the volume to the node instance at the configured device', () => {
    r.template.hasResourceProperties('AWS::EC2::VolumeAttachment', {
      InstanceId: 'i-0123456789abcdef0',
      Device: '/dev/sdf',
      VolumeId: { Ref: Match.stringLikeRegexp('DataVolume') },
    });
  });

  it('rotates and retains the key', () => {
    r.template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ EnableKeyRotation: true }),
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  it('tags the adopted volume (managed, its node, this deployment) without owning it', () => {
    r.template.hasResourceProperties('Custom::AWS', {
      Create: Match.stringLikeRegexp(
        '"action":"createTags".*vol-0123456789abcdef0.*stemedb:managed.*stemedb:node.*db-2.*stemedb:deployment.*StemeDB',
      ),
    });
    const custom = (Object.values(r.template.findResources('Custom::AWS')) as Resource[]).filter((c) =>
      String(c.Properties.Create).includes('"action":"createTags"'),
    );
    expect(custom).toHaveLength(1);
    expect(custom[0]?.Properties.Delete).toBeUndefined();
    r.template.resourceCountIs('AWS::EC2::VolumeAttachment', 1);
  });

  it("snapshots this deployment's volumes daily, and keeps the configured count, by the deployment tag alone", () => {
    // DLM targets a volume that has ANY of the target tags: stemedb:managed=true (the same in every
    // deployment) beside it would make this policy snapshot every other deployment's volumes.
    r.template.hasResourceProperties('AWS::DLM::LifecyclePolicy', {
      State: 'ENABLED',
      PolicyDetails: {
        ResourceTypes: ['VOLUME'],
        TargetTags: [{ Key: 'stemedb:deployment', Value: 'StemeDB' }],
        Schedules: [
          Match.objectLike({
            CreateRule: { Interval: 24, IntervalUnit: 'HOURS', Times: ['03:00'] },
            RetainRule: { Count: 7 },
          }),
        ],
      },
    });
  });

  it("configures each node's agent to publish the data mount's disk metrics to a namespace of its own, on its instance only", () => {
    for (const [node, instance] of TWO_NODES) {
      const params = Object.entries(
        r.template.findResources('AWS::SSM::Parameter', {
          Properties: { Name: `AmazonCloudWatch-StemeDB-disk-${node}` },
        }),
      ) as Array<[string, Resource]>;
      expect(params, node).toHaveLength(1);
      const [logicalId, param] = params[0] as [string, Resource];
      const agent = JSON.parse(param.Properties.Value as string);
      expect(agent.metrics.namespace).toBe(`CWAgent/StemeDB/${instance}`);
      expect(agent.metrics.metrics_collected.disk.resources).toEqual(['/data']);
      expect(agent.metrics.metrics_collected.disk.measurement).toEqual(
        expect.arrayContaining(['free', 'total', 'inodes_free', 'inodes_total', 'used_percent']),
      );
      expect(agent.metrics.aggregation_dimensions).toEqual([['InstanceId', 'path']]);
      r.template.hasResourceProperties('AWS::SSM::Association', {
        Name: 'AmazonCloudWatch-ManageAgent',
        AssociationName: `StemeDB-configure-cloudwatch-agent-${node}`,
        Parameters: Match.objectLike({
          optionalConfigurationSource: ['ssm'],
          optionalConfigurationLocation: [{ Ref: logicalId }],
        }),
        Targets: [{ Key: 'InstanceIds', Values: [instance] }],
      });
    }
    // No agent configuration is shared between nodes.
    r.template.resourcePropertiesCountIs(
      'AWS::SSM::Association',
      { Name: 'AmazonCloudWatch-ManageAgent' },
      2,
    );
    r.template.hasResourceProperties('AWS::SSM::Association', {
      Name: 'AWS-ConfigureAWSPackage',
      Targets: [{ Key: 'InstanceIds', Values: [DB1, DB2] }],
    });
  });

  it("reads every alarm of a node from that node's own namespace, the one only that node may publish to", () => {
    for (const [node, instance] of TWO_NODES) {
      const alarms = Object.values(
        r.template.findResources('AWS::CloudWatch::Alarm', {
          Properties: { AlarmName: Match.stringLikeRegexp(`^StemeDB-${node}-disk-`) },
        }),
      ) as Resource[];
      expect(alarms).toHaveLength(6);
      for (const a of alarms) {
        const p = a.Properties as { Namespace?: string; Metrics?: MetricQuery[] };
        const namespaces = [
          p.Namespace,
          ...(p.Metrics ?? []).map((m) => m.MetricStat?.Metric.Namespace),
        ].filter((x) => x !== undefined);
        expect(namespaces.length).toBeGreaterThan(0);
        expect(new Set(namespaces)).toEqual(new Set([agentNamespace('StemeDB', instance)]));
      }
    }
    expect(agentNamespace('StemeDB', DB1)).not.toBe(agentNamespace('StemeDB', DB2));
  });

  it('creates six alarms per node', () => {
    const disk = r.template.findResources('AWS::CloudWatch::Alarm', {
      Properties: { AlarmName: Match.stringLikeRegexp('^StemeDB-db-[12]-disk-') },
    });
    expect(Object.keys(disk)).toHaveLength(12);
  });

  const spaceAlarms: ReadonlyArray<[string, number, number]> = [
    ['warning', 20, 15],
    ['critical', 10, 5],
    ['emergency-space', 5, 2],
  ];
  for (const [kind, threshold, minutes] of spaceAlarms) {
    it(`alarms ${kind} when free space (avail/size) stays below ${threshold}% for ${minutes} minutes`, () => {
      const a = alarmNamed(r, `StemeDB-db-1-disk-${kind}`);
      expect(a).toMatchObject({
        ComparisonOperator: 'LessThanThreshold',
        Threshold: threshold,
        EvaluationPeriods: minutes,
        DatapointsToAlarm: minutes,
        TreatMissingData: 'missing',
      });
      const metrics = a.Metrics as MetricQuery[];
      const expr = metrics.find((m) => m.Expression !== undefined);
      expect(expr?.Expression).toBe('100 * free / total');
      const stats = metrics.filter((m) => m.MetricStat !== undefined);
      expect(stats.map((m) => m.MetricStat?.Metric.MetricName).sort()).toEqual(['disk_free', 'disk_total']);
      for (const m of stats) {
        expect(m.MetricStat?.Period).toBe(60);
        expect(m.MetricStat?.Metric.Namespace).toBe(`CWAgent/StemeDB/${DB1}`);
        expect(m.MetricStat?.Metric.Dimensions).toEqual([
          { Name: 'InstanceId', Value: 'i-0123456789abcdef0' },
          { Name: 'path', Value: '/data' },
        ]);
      }
      // period × evaluation periods is the runbook's window
      expect((stats[0]?.MetricStat?.Period ?? 0) * (a.EvaluationPeriods as number)).toBe(minutes * 60);
    });
  }

  it('alarms inode warning when free inodes stay below 10% for 15 minutes', () => {
    const a = alarmNamed(r, 'StemeDB-db-2-disk-inode-warning');
    expect(a).toMatchObject({
      Threshold: 10,
      EvaluationPeriods: 15,
      DatapointsToAlarm: 15,
      TreatMissingData: 'missing',
    });
    const metrics = a.Metrics as MetricQuery[];
    expect(metrics.find((m) => m.Expression)?.Expression).toBe('100 * ifree / itotal');
    expect(
      metrics
        .filter((m) => m.MetricStat)
        .map((m) => m.MetricStat?.Metric.MetricName)
        .sort(),
    ).toEqual(['disk_inodes_free', 'disk_inodes_total']);
  });

  // The two alarms on one metric, not on free space as a percentage: each test name with its alarm.
  const singleMetricAlarms: ReadonlyArray<[string, string, Record<string, unknown>]> = [
    [
      'alarms when fewer than 1000 inodes are free',
      'StemeDB-db-1-disk-emergency-inodes',
      {
        MetricName: 'disk_inodes_free',
        Namespace: `CWAgent/StemeDB/${DB1}`,
        Statistic: 'Minimum',
        Threshold: 1000,
        Period: 60,
        ComparisonOperator: 'LessThanThreshold',
      },
    ],
    [
      'alarms when the agent stops reporting, treating silence as breaching',
      'StemeDB-db-1-disk-no-data',
      {
        MetricName: 'disk_total',
        Statistic: 'SampleCount',
        Threshold: 1,
        EvaluationPeriods: 10,
        TreatMissingData: 'breaching',
      },
    ],
  ];
  it.each(singleMetricAlarms)('%s', (_name, alarmName, expected) => {
    expect(alarmNamed(r, alarmName)).toMatchObject(expected);
  });

  it('notifies the encrypted topic on ALARM and on OK', () => {
    const a = alarmNamed(r, 'StemeDB-db-1-disk-critical');
    expect(a.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^NotificationsTopic/) }]);
    expect(a.OKActions).toEqual([{ Ref: expect.stringMatching(/^NotificationsTopic/) }]);
    r.template.hasResourceProperties('AWS::SNS::Topic', {
      KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] },
    });
    r.template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
  });

  it('registers each node for the router', () => {
    r.template.hasResourceProperties('AWS::SSM::Parameter', {
      Name: '/StemeDB/nodes/db-2',
      Value: Match.stringLikeRegexp('"instanceId":"i-0fedcba9876543210".*"volumeId":"vol-0123456789abcdef0"'),
    });
  });

  it('draws a dashboard row per node with the thresholds as annotations', () => {
    const dash = Object.values(
      r.template.findResources('AWS::CloudWatch::Dashboard', {
        Properties: { DashboardName: 'StemeDB-disk' },
      }),
    ) as Resource[];
    expect(dash).toHaveLength(1);
    const body = JSON.stringify(dash[0]?.Properties.DashboardBody);
    for (const text of [
      'db-1: free space %',
      'db-2: free inodes %',
      'db-1: alarms',
      'warning < 20%',
      'critical < 10%',
      'emergency < 5%',
      'inode warning < 10%',
    ]) {
      expect(body).toContain(text);
    }
    // The graphs read each node's own namespace, never the agent's default one.
    expect(body).toContain(`CWAgent/StemeDB/${DB1}`);
    expect(body).toContain(`CWAgent/StemeDB/${DB2}`);
    expect(body).not.toMatch(/\\"CWAgent\\"/);
  });
});

describe('WAL archive bucket', () => {
  let r: SynthResult;
  beforeAll(() => {
    r = synthStack(twoNodes);
  });

  it('encrypts with the stack key, versions, blocks public access and logs access', () => {
    r.template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            BucketKeyEnabled: true,
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: 'aws:kms',
              KMSMasterKeyID: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] },
            },
          },
        ],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: {
        DestinationBucketName: { Ref: Match.stringLikeRegexp('AccessLogs') },
        LogFilePrefix: 'wal-archive/',
      },
    });
  });

  it('moves archived WAL to a colder class and expires noncurrent versions', () => {
    r.template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: [
          Match.objectLike({
            Transitions: [{ StorageClass: 'GLACIER_IR', TransitionInDays: 30 }],
            NoncurrentVersionExpiration: { NoncurrentDays: 90 },
            Status: 'Enabled',
          }),
        ],
      },
    });
  });

  it('refuses requests without TLS', () => {
    r.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^WalArchiveBucket') },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('denies every PutObject without If-None-Match (create-only) but on the two manifests written again each run', () => {
    r.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: Match.stringLikeRegexp('^WalArchiveBucket') },
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Sid: 'ArchivedObjectsAreCreateOnly',
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 's3:PutObject',
            NotResource: [
              {
                'Fn::Join': [
                  '',
                  [
                    { 'Fn::GetAtt': [Match.stringLikeRegexp('^WalArchiveBucket'), 'Arn'] },
                    '/wal/*/_manifest/upload.json',
                  ],
                ],
              },
              {
                'Fn::Join': [
                  '',
                  [
                    { 'Fn::GetAtt': [Match.stringLikeRegexp('^WalArchiveBucket'), 'Arn'] },
                    '/wal/*/_manifest/verified.json',
                  ],
                ],
              },
            ],
            Condition: { Null: { 's3:if-none-match': 'true' } },
          },
        ]),
      },
    });
  });

  it('retains the archive when the stack is deleted', () => {
    r.template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({ VersioningConfiguration: { Status: 'Enabled' } }),
    });
  });

  it('turns on governance-mode Object Lock when configured', () => {
    const locked = synthStack({ archive: { objectLockDays: 14 } });
    locked.template.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 14 } },
      },
    });
  });

  it('lets a node put and read only its own prefix, and never delete', () => {
    const policies = r.template.findResources('AWS::IAM::ManagedPolicy', {
      Properties: { ManagedPolicyName: 'StemeDB-node-db-1' },
    });
    const doc = JSON.stringify(Object.values(policies)[0]);
    expect(doc).toContain('/wal/db-1/*');
    expect(doc).not.toContain('/wal/db-2/');
    expect(doc).not.toMatch(/s3:Delete|s3:\*/);
    expect(doc).toContain('"s3:prefix":["wal/db-1/*"]');
  });

  it('lets a node list only its own prefix, as DeleteArchivedWal does before deleting (ListObjectsV2 --prefix wal/<node>/)', () => {
    r.template.hasResourceProperties('AWS::IAM::ManagedPolicy', {
      ManagedPolicyName: 'StemeDB-node-db-1',
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Sid: 'ListOwnWalArchive',
            Effect: 'Allow',
            Action: 's3:ListBucket',
            Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('WalArchiveBucket'), 'Arn'] },
            Condition: { StringLike: { 's3:prefix': ['wal/db-1/*'] } },
          },
        ]),
      },
    });
  });
});

describe('Prometheus rules in Amazon Managed Service for Prometheus', () => {
  it('creates the rule groups namespace with the generated rules when a workspace is configured', () => {
    const r = synthStack(twoNodes);
    const committed = readFileSync(join(__dirname, '..', 'prometheus', 'stemedb-disk-rules.yml'), 'utf8');
    r.template.hasResourceProperties('AWS::APS::RuleGroupsNamespace', {
      Data: committed,
      Workspace: {
        'Fn::Join': [
          '',
          [
            'arn:',
            { Ref: 'AWS::Partition' },
            ':aps:',
            { Ref: 'AWS::Region' },
            ':',
            { Ref: 'AWS::AccountId' },
            ':workspace/ws-12345678-abcd-ef01-2345-6789abcdef01',
          ],
        ],
      },
    });
  });

  it('creates no namespace without a workspace', () => {
    synthStack({}).template.resourceCountIs('AWS::APS::RuleGroupsNamespace', 0);
  });
});

describe('stack with no nodes', () => {
  it('synthesizes the shared parts and warns how to add nodes', () => {
    const r = synthStack({});
    r.template.resourceCountIs('AWS::EC2::Volume', 0);
    const disk = r.template.findResources('AWS::CloudWatch::Alarm', {
      Properties: { AlarmName: Match.stringLikeRegexp('-disk-') },
    });
    expect(Object.keys(disk)).toHaveLength(0);
    r.template.resourceCountIs('AWS::KMS::Key', 1);
    r.template.resourceCountIs('AWS::SNS::Topic', 1);
    Annotations.fromStack(r.stack).hasWarning(
      '*',
      Match.stringLikeRegexp('No StemeDB nodes are configured.*stemedbConfig'),
    );
  });
});

describe('thresholds from configuration', () => {
  it('moves the warning alarm when the warning level changes', () => {
    const r = synthStack({
      ...twoNodes,
      thresholds: { warningFreePercent: 25, warningMinutes: 30, recoveredUsedPercent: 75 },
    });
    expect(alarmNamed(r, 'StemeDB-db-1-disk-warning')).toMatchObject({
      Threshold: 25,
      EvaluationPeriods: 30,
    });
  });
});

describe('resources per stack, as the configuration budgets them', () => {
  const resourceCount = (r: SynthResult) => Object.keys(r.template.toJSON().Resources ?? {}).length;

  it('counts exactly the resources of stacks with no node, new and adopted volumes, emails and a workspace', () => {
    for (const raw of [{}, twoNodes, { ...twoNodes, notifyEmails: ['a@example.com', 'b@example.com'] }]) {
      const r = synthStack(raw);
      expect(resourceCount(r)).toBe(stackResourceCount(r.config));
    }
  });

  it('counts exactly the resources of Prometheus alerting: a workspace without adopted volumes, a self-managed Alertmanager, both', () => {
    const workspaceId = twoNodes.prometheusWorkspaceId;
    for (const raw of [
      { prometheusWorkspaceId: workspaceId },
      { selfManagedAlertmanager: true },
      { ...twoNodes, selfManagedAlertmanager: true },
    ]) {
      const r = synthStack(raw);
      expect(resourceCount(r)).toBe(stackResourceCount(r.config));
    }
  });

  it('synthesizes the most nodes the shared stack accepts, with every optional shared part: 16, within 450 resources and 800 KB', () => {
    const nodes = Array.from({ length: 17 }, (_, i) => ({
      name: `db-${i + 1}`,
      instanceId: `i-${(i + 1).toString(16).padStart(17, '0')}`,
      availabilityZone: 'eu-west-1a',
      // Every other node adopts its volume (the custom resource provider, the longer registry entry).
      ...(i % 2 === 0
        ? { dataVolume: { sizeGiB: 100, type: 'io2', iops: 5000, deviceName: '/dev/sdf' } }
        : { existingVolumeId: `vol-${(i + 1).toString(16).padStart(17, '0')}` }),
    }));
    const heaviest = {
      prometheusWorkspaceId: twoNodes.prometheusWorkspaceId,
      selfManagedAlertmanager: true,
      notifyEmails: ['oncall@example.com', 'platform@example.com'],
      prevention: { journald: { associate: true }, storage: { associate: true } },
    };
    expect(() => resolveConfig({ ...heaviest, nodes })).toThrow(/the shared stack holds at most 16 nodes/);
    const r = synthStack({ ...heaviest, nodes: nodes.slice(0, 16) });
    expect(resourceCount(r)).toBe(stackResourceCount(r.config));
    expect(resourceCount(r)).toBeLessThanOrEqual(450);
    expect(resourceCount(r)).toBeLessThanOrEqual(STACK_RESOURCE_LIMIT);
    const written = readFileSync(join(r.app.outdir, 'StemeDB-Disk.template.json'));
    expect(written.length).toBeLessThanOrEqual(800 * 1024);
  });
});
