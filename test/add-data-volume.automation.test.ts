/**
 * Runbook §5B's AWS half: StemeDB-AddDataVolume and StemeDB-RetireDataVolume as synthesized
 * (two-node stack, intrinsics resolved for an account), run by the local Automation runner with
 * real python3/boto3 against a moto_server: DescribeInstances/DescribeVolumes, the node registry,
 * CreateVolume with the tags and the key in the request, AttachVolume, CreateTags, DetachVolume.
 * Run Command reads (the failed host step's JSON) come from the drill's local SSM endpoint; the
 * host phases answer as ssm-documents/scripts/migrate-data-volume.sh does (they run for real on
 * loop devices in test/migrate-data-volume.command.test.ts). Errors moto cannot produce (a volume that
 * ends in `error`, an attachment elsewhere, no free device name) run the step's Python with a
 * stub boto3. The Plan step's sizing is checked against lambda/shared/sizing-policy.ts.
 */
import { readFileSync } from 'node:fs';
import {
  AttachVolumeCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeVolumesCommand,
  EC2Client,
  RunInstancesCommand,
  type Volume,
} from '@aws-sdk/client-ec2';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { VOLUME_LIMITS } from '../contracts/ebs';
import { decideTargetSize } from '../lambda/shared/sizing-policy';
import type { AutomationDocumentContent } from '../lib/automation-document';
import { CommandLedger, LocalSsmEndpoint } from './drill/local-ssm';
import {
  type PythonHandlerError,
  runPythonHandler,
  runStepScript,
  stepScript,
} from './support/automation-python';
import {
  type AutomationBackends,
  AutomationService,
  type CommandInvocationResult,
  type ExecutionRecord,
  type Principal,
  type RunCommandRequest,
} from './support/automation-runner';
import { type MotoServer, startMotoServer, TEST_REGION } from './support/moto-server';
import { ResolvedTemplate } from './support/resolved-template';
import { synthStack, TWO_NODES_FILE } from './support/synth';

const ACCOUNT = '123456789012';
const AZ = `${TEST_REGION}a`;
const CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

const OPERATOR: Principal = {
  name: 'operator',
  arn: `arn:aws:iam::${ACCOUNT}:role/operator`,
  credentials: { accessKeyId: 'AKIAOPERATOR', secretAccessKey: 'secret-operator' },
};

interface HostAnswer {
  readonly exitCode: number;
  readonly json: Record<string, unknown>;
}

/** What the host script prints for a migration that worked (the shape of its JSON line). */
function migrated(request: RunCommandRequest): HostAnswer {
  return {
    exitCode: 0,
    json: {
      status: 'migrated',
      reason: `/data moved to the disk of ${String(request.parameters.VolumeId)}`,
      rolledBack: false,
      verify: { files: 50, bytes: 93250335, identical: true },
      timings: { downtimeSeconds: 1.4 },
    },
  };
}

/** Back ends: moto for EC2, SNS and SSM parameters, the local endpoint for Run Command reads, a scripted host. */
class Backends implements AutomationBackends {
  readonly account = ACCOUNT;
  readonly region = TEST_REGION;
  readonly partition = 'aws';
  readonly docs = new Map<string, AutomationDocumentContent>();
  readonly ledger = new CommandLedger();
  readonly commands: RunCommandRequest[] = [];
  host: (request: RunCommandRequest) => HostAnswer = (r) =>
    r.documentName.endsWith('-MigrateDataVolume') && r.parameters.Action !== 'check-unused'
      ? migrated(r)
      : {
          exitCode: 0,
          json: { status: r.parameters.Action === 'check-unused' ? 'unused' : 'ok', healthy: true },
        };
  ssmEndpoint = '';

  constructor(
    readonly moto: MotoServer,
    readonly automationRole: Principal,
  ) {}

  automationDocument(name: string): AutomationDocumentContent | undefined {
    return this.docs.get(name);
  }

  async assumeRole(roleArn: string): Promise<Principal> {
    if (roleArn !== this.automationRole.arn) throw new Error(`${roleArn} cannot be assumed`);
    return this.automationRole;
  }

  async authorize(): Promise<void> {
    // Every permission is evaluated by test/permissions.test.ts over the same template.
  }

  async invokeLambda(): Promise<never> {
    throw new Error('AddDataVolume and RetireDataVolume invoke no Lambda');
  }

  async runCommand(
    caller: Principal,
    request: RunCommandRequest,
  ): Promise<readonly CommandInvocationResult[]> {
    this.commands.push(request);
    return request.instanceIds.map((instanceId) => {
      const record = this.ledger.add({
        instanceId,
        documentName: request.documentName,
        parameters: Object.fromEntries(
          Object.entries(request.parameters).map(([k, v]) => [k, typeof v === 'string' ? [v] : [...v]]),
        ),
        comment: '',
        sentBy: caller.name,
      });
      const answer = this.host(request);
      record.endedAt = new Date();
      record.stdout = `progress on stderr\n${JSON.stringify(answer.json)}\n`;
      record.responseCode = answer.exitCode;
      record.status = answer.exitCode === 0 ? 'Success' : 'Failed';
      return {
        commandId: record.commandId,
        instanceId,
        status: record.status as CommandInvocationResult['status'],
        responseCode: answer.exitCode,
        output: record.stdout,
        stderr: answer.exitCode === 0 ? '' : String(answer.json.reason),
        principal: 'instance-role',
      };
    });
  }

  awsEnv(): NodeJS.ProcessEnv {
    return {
      AWS_ENDPOINT_URL: this.moto.endpoint,
      AWS_ENDPOINT_URL_SSM: this.ssmEndpoint,
      AWS_DEFAULT_REGION: TEST_REGION,
      AWS_EC2_METADATA_DISABLED: 'true',
    };
  }

  scaleSleepMs(ms: number): number {
    return ms / 1000;
  }
}

let moto: MotoServer;
let resolved: ResolvedTemplate;
let addDataVolume: AutomationDocumentContent;
let retireDataVolume: AutomationDocumentContent;
let automationRole: Principal;
let backends: Backends;
let service: AutomationService;
let endpoint: LocalSsmEndpoint;
let ec2: EC2Client;
let keyArn: string;

/** One node in moto: a managed instance of this deployment, its attached data volume, its registry entry. */
interface Node {
  readonly instanceId: string;
  readonly volumeId: string;
}

async function makeNode(opts: { sizeGiB?: number; name?: string; deployment?: string } = {}): Promise<Node> {
  const name = opts.name ?? 'db-1';
  const tags = [
    { Key: 'stemedb:managed', Value: 'true' },
    { Key: 'stemedb:node', Value: name },
    { Key: 'stemedb:deployment', Value: opts.deployment ?? 'StemeDB' },
  ];
  const run = await ec2.send(
    new RunInstancesCommand({
      ImageId: 'ami-12c6146b',
      MinCount: 1,
      MaxCount: 1,
      Placement: { AvailabilityZone: AZ },
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
    }),
  );
  const instanceId = run.Instances?.[0]?.InstanceId as string;
  const volume = await ec2.send(
    new CreateVolumeCommand({
      AvailabilityZone: AZ,
      Size: opts.sizeGiB ?? 100,
      VolumeType: 'gp3',
      Iops: 4000,
      Throughput: 250,
      Encrypted: true,
      TagSpecifications: [{ ResourceType: 'volume', Tags: tags }],
    }),
  );
  const volumeId = volume.VolumeId as string;
  await ec2.send(new AttachVolumeCommand({ Device: '/dev/sdf', InstanceId: instanceId, VolumeId: volumeId }));
  await registry(name, instanceId, volumeId);
  return { instanceId, volumeId };
}

async function registry(name: string, instanceId: string, volumeId: string): Promise<void> {
  const ssm = new SSMClient({ endpoint: moto.endpoint, region: TEST_REGION, credentials: CREDENTIALS });
  await ssm.send(
    new PutParameterCommand({
      Name: `/StemeDB/nodes/${name}`,
      Type: 'String',
      Overwrite: true,
      Value: JSON.stringify({ name, instanceId, availabilityZone: AZ, volumeId, dataMount: '/data' }),
    }),
  );
}

async function volume(volumeId: string): Promise<Volume> {
  const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
  return out.Volumes?.[0] as Volume;
}

function tagsOf(v: Volume): Record<string, string> {
  return Object.fromEntries((v.Tags ?? []).map((t) => [t.Key as string, t.Value as string]));
}

async function allVolumes(): Promise<Volume[]> {
  return (await ec2.send(new DescribeVolumesCommand({}))).Volumes ?? [];
}

async function run(document: string, parameters: Record<string, string>): Promise<ExecutionRecord> {
  const id = await service.start(
    {
      DocumentName: document,
      Parameters: Object.fromEntries(Object.entries(parameters).map(([k, v]) => [k, [v]])),
    },
    OPERATOR,
  );
  return await service.wait(id);
}

function step(record: ExecutionRecord, name: string) {
  return record.steps.find((s) => s.name === name);
}

function message(record: ExecutionRecord, name: string): string {
  return String((step(record, name)?.inputs as { Message?: string } | undefined)?.Message);
}

beforeAll(async () => {
  moto = await startMotoServer();
  ec2 = new EC2Client({ endpoint: moto.endpoint, region: TEST_REGION, credentials: CREDENTIALS });
  const synthed = synthStack(JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')) as Record<string, unknown>);
  resolved = new ResolvedTemplate(synthed.template.toJSON(), {
    account: ACCOUNT,
    region: TEST_REGION,
    stackName: 'StemeDB-Disk',
  });
  const doc = (name: string) =>
    resolved.resources('AWS::SSM::Document').find((d) => d.ref === name)?.properties
      .Content as AutomationDocumentContent;
  addDataVolume = doc('StemeDB-AddDataVolume');
  retireDataVolume = doc('StemeDB-RetireDataVolume');
  const createStep = addDataVolume.mainSteps.find((s) => s.name === 'CreateVolume') as {
    inputs: { InputPayload: { kmsKeyId: string } };
  };
  keyArn = createStep.inputs.InputPayload.kmsKeyId;
  const roleArn = (addDataVolume.parameters?.AutomationAssumeRole?.default ?? '') as string;
  automationRole = {
    name: 'automation-role',
    arn: roleArn,
    credentials: {
      accessKeyId: 'AKIAAUTOMATION',
      secretAccessKey: 'secret-automation',
      sessionToken: 'token',
    },
  };
}, 180_000);

beforeEach(async () => {
  await endpoint?.stop();
  await moto.reset();
  const topicName = String(resolved.resources('AWS::SNS::Topic')[0]?.properties.TopicName);
  const sns = new SNSClient({ endpoint: moto.endpoint, region: TEST_REGION, credentials: CREDENTIALS });
  await sns.send(new CreateTopicCommand({ Name: topicName }));
  backends = new Backends(moto, automationRole);
  backends.docs.set('StemeDB-AddDataVolume', addDataVolume);
  backends.docs.set('StemeDB-RetireDataVolume', retireDataVolume);
  service = new AutomationService(backends);
  endpoint = new LocalSsmEndpoint({
    motoEndpoint: moto.endpoint,
    account: ACCOUNT,
    region: TEST_REGION,
    automation: service,
    commands: backends.ledger,
    principalOf: (key) => (key === automationRole.credentials.accessKeyId ? automationRole : undefined),
    authorize: async () => undefined,
  });
  backends.ssmEndpoint = await endpoint.start();
});

afterAll(async () => {
  await endpoint?.stop();
  await moto?.stop();
});

/** The steps every run that is not a dry run takes, up to the host's migration. */
const UP_TO_MIGRATE = ['Plan', 'CreateVolume', 'BranchOnDryRun', 'AttachVolume', 'Migrate'] as const;

describe('StemeDB-AddDataVolume against moto', () => {
  it('creates an encrypted volume with the managed tags in the request, attaches it at a free name, moves the data, marks the old one replaced', async () => {
    const node = await makeNode();
    const record = await run('StemeDB-AddDataVolume', {
      InstanceId: node.instanceId,
      Reason: 'volume at its cap',
    });
    expect(record.failureMessage).toBeUndefined();
    expect(record.status).toBe('Success');
    expect(record.steps.map((s) => s.name)).toEqual([...UP_TO_MIGRATE, 'MarkReplaced', 'Validate', 'Notify']);
    const newId = String(record.outputs['CreateVolume.VolumeId']?.[0]);
    const created = await volume(newId);
    // The sizing policy on 100 GiB: +50% (15% would be less than +10 GiB), the old IOPS and throughput.
    expect(created).toMatchObject({
      Size: 150,
      VolumeType: 'gp3',
      Iops: 4000,
      Throughput: 250,
      AvailabilityZone: AZ,
      Encrypted: true,
      KmsKeyId: keyArn,
      State: 'in-use',
    });
    expect(keyArn).toMatch(/^arn:aws:kms:eu-west-1:123456789012:key\//);
    expect(tagsOf(created)).toEqual({
      'stemedb:managed': 'true',
      'stemedb:node': 'db-1',
      'stemedb:deployment': 'StemeDB',
      'stemedb:replaces': node.volumeId,
      'stemedb:migration': record.executionId,
      Name: 'StemeDB-db-1-data',
    });
    // /dev/sdf holds the old volume: the next free name.
    expect(created.Attachments?.[0]).toMatchObject({
      InstanceId: node.instanceId,
      Device: '/dev/sdg',
      State: 'attached',
    });
    const [migrate, validate] = backends.commands;
    expect(migrate?.documentName).toBe('StemeDB-Host-MigrateDataVolume');
    expect(migrate?.parameters).toMatchObject({
      MountPoint: '/data',
      VolumeId: newId,
      CurrentVolumeId: node.volumeId,
      ServiceName: 'stemedb-api',
      HealthUrl: 'http://localhost:18180/v1/health',
      DryRun: 'false',
    });
    expect(validate?.documentName).toBe('StemeDB-Host-ValidateDiskHealth');
    const old = await volume(node.volumeId);
    expect(tagsOf(old)).toMatchObject({
      'stemedb:managed': 'replaced',
      'stemedb:replaced-by': newId,
      'stemedb:node': 'db-1',
    });
    expect(tagsOf(old)['stemedb:replaced-at']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    // The old volume stays attached; nothing is deleted.
    expect(old.Attachments?.[0]).toMatchObject({ InstanceId: node.instanceId, State: 'attached' });
    const text = message(record, 'Notify');
    expect(text).toContain(`"existingVolumeId": "${newId}"`);
    expect(text).toContain(`StemeDB-RetireDataVolume with VolumeId=${node.volumeId}`);
    expect(text).toContain('"status":"migrated"');

    // The stack has not learned of the new volume yet: a second run refuses (the registry names the old one).
    const again = await run('StemeDB-AddDataVolume', { InstanceId: node.instanceId });
    expect(again.status).toBe('Failed');
    expect(step(again, 'Plan')?.failureMessage).toContain(
      `names instance ${node.instanceId} and volume ${node.volumeId}`,
    );
    expect((await allVolumes()).length).toBe(3); // root, old, new: nothing more was created
  });

  it('at the cap the sizing policy gives nothing larger: refused before anything is created; SizeGiB asks for more', async () => {
    const node = await makeNode({ sizeGiB: 4096 });
    const before = (await allVolumes()).length;
    const refused = await run('StemeDB-AddDataVolume', { InstanceId: node.instanceId });
    expect(refused.status).toBe('Failed');
    expect(step(refused, 'Plan')?.failureMessage).toMatch(
      /no larger size by the sizing policy: the volume is 4096 GiB, at the cap: maxSizeGiB \(4096 GiB\); pass SizeGiB/,
    );
    expect(refused.steps.map((s) => s.name)).toEqual(['Plan', 'NotifyFailure', 'FailExecution']);
    expect((await allVolumes()).length).toBe(before);
    const asked = await run('StemeDB-AddDataVolume', {
      InstanceId: node.instanceId,
      SizeGiB: '6000',
      VolumeType: 'io2',
      Filesystem: 'ext4',
      InodeRatio: '4096',
    });
    expect(asked.status).toBe('Success');
    const created = await volume(String(asked.outputs['CreateVolume.VolumeId']?.[0]));
    // io2 from gp3: no IOPS to copy, the 3000 baseline.
    expect(created).toMatchObject({ Size: 6000, VolumeType: 'io2', Iops: 3000 });
    expect(backends.commands[0]?.parameters).toMatchObject({ Filesystem: 'ext4', InodeRatio: '4096' });
  });

  it('a failed migration keeps the new volume, tags it migration-failed and reports the rollback; the old volume is untouched', async () => {
    const node = await makeNode();
    backends.host = (r) =>
      r.documentName.endsWith('-MigrateDataVolume')
        ? {
            exitCode: 1,
            json: {
              status: 'rolled-back',
              reason:
                'the final rsync failed (exit 23); rolled back: /data is on the old filesystem again, fstab as before, stemedb-api running and healthy; the new disk /dev/nvme2n1 is left as it is (unmounted) for inspection',
              rolledBack: true,
              rollbackHealthy: true,
            },
          }
        : { exitCode: 0, json: { healthy: true } };
    const record = await run('StemeDB-AddDataVolume', { InstanceId: node.instanceId });
    expect(record.status).toBe('Failed');
    expect(record.steps.map((s) => s.name)).toEqual([
      ...UP_TO_MIGRATE,
      'MarkFailed',
      'NotifyMigrationFailed',
      'FailExecution',
    ]);
    const newId = String(step(record, 'CreateVolume')?.outputs.VolumeId);
    const kept = await volume(newId);
    expect(kept.State).toBe('in-use');
    expect(tagsOf(kept)).toMatchObject({
      'stemedb:managed': 'migration-failed',
      // Tag values take letters, digits, spaces and _.:/=+-@ only.
      'stemedb:migration-result': expect.stringMatching(/^rolled-back: the final rsync failed {2}exit 23 /),
    });
    expect(tagsOf(await volume(node.volumeId))['stemedb:managed']).toBe('true');
    const text = message(record, 'NotifyMigrationFailed');
    expect(text).toContain('Host result: rolled-back: the final rsync failed (exit 23)');
    expect(text).toContain(
      'Rolled back: true; service healthy after the rollback: true (command Failed, exit code 1)',
    );
    expect(text).toContain(`NewVolumeId=${newId}`);
    // With the new volume marked, exactly one managed volume is attached again (the old one), so a
    // run can resume on the kept volume: it is managed again for the attempt, and nothing is created.
    backends.host = (r) =>
      r.documentName.endsWith('-MigrateDataVolume') ? migrated(r) : { exitCode: 0, json: {} };
    const before = (await allVolumes()).length;
    const resumed = await run('StemeDB-AddDataVolume', { InstanceId: node.instanceId, NewVolumeId: newId });
    expect(resumed.failureMessage).toBeUndefined();
    expect(step(resumed, 'CreateVolume')?.outputs.Created).toBe('reused');
    expect((await allVolumes()).length).toBe(before);
    expect(tagsOf(await volume(newId))).toMatchObject({
      'stemedb:managed': 'true',
      'stemedb:migration-result': `resumed by ${resumed.executionId}`,
    });
    expect(tagsOf(await volume(node.volumeId))).toMatchObject({
      'stemedb:managed': 'replaced',
      'stemedb:replaced-by': newId,
    });
    // A volume of another node is never taken over.
    const other = await run('StemeDB-AddDataVolume', {
      InstanceId: node.instanceId,
      NewVolumeId: node.volumeId,
    });
    expect(step(other, 'Plan')?.failureMessage).toMatch(
      /registry entry|attached volumes|is not a volume made by this document/,
    );
  });

  it('resumes with NewVolumeId on a volume an earlier run created, creating nothing', async () => {
    const node = await makeNode();
    const earlier = await ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: AZ,
        Size: 150,
        VolumeType: 'gp3',
        Encrypted: true,
        TagSpecifications: [
          {
            ResourceType: 'volume',
            Tags: [
              { Key: 'stemedb:managed', Value: 'true' },
              { Key: 'stemedb:node', Value: 'db-1' },
              { Key: 'stemedb:deployment', Value: 'StemeDB' },
              { Key: 'stemedb:replaces', Value: node.volumeId },
            ],
          },
        ],
      }),
    );
    const before = (await allVolumes()).length;
    const record = await run('StemeDB-AddDataVolume', {
      InstanceId: node.instanceId,
      NewVolumeId: String(earlier.VolumeId),
    });
    expect(record.status).toBe('Success');
    expect(step(record, 'CreateVolume')?.outputs).toMatchObject({
      VolumeId: earlier.VolumeId,
      Created: 'reused',
    });
    expect((await allVolumes()).length).toBe(before);
    expect((await volume(String(earlier.VolumeId))).State).toBe('in-use');
  });

  it('DryRun asks EC2 with DryRun=true, creates and attaches nothing, and runs the host phases as a dry run', async () => {
    const node = await makeNode();
    const before = await allVolumes();
    const record = await run('StemeDB-AddDataVolume', { InstanceId: node.instanceId, DryRun: 'true' });
    expect(record.status).toBe('Success');
    expect(record.steps.map((s) => s.name)).toEqual([
      'Plan',
      'CreateVolume',
      'BranchOnDryRun',
      'HostDryRun',
      'NotifyDryRun',
    ]);
    expect(step(record, 'CreateVolume')?.outputs.Created).toBe('dry-run: CreateVolume would be allowed');
    expect(await allVolumes()).toEqual(before);
    expect(backends.commands).toHaveLength(1);
    expect(backends.commands[0]?.parameters).toMatchObject({
      DryRun: 'true',
      CurrentVolumeId: node.volumeId,
    });
    expect(backends.commands[0]?.parameters.VolumeId).toBeUndefined();
  });

  it('refuses an instance of another deployment, a registry entry that names another volume, and hostile parameters', async () => {
    const other = await makeNode({ deployment: 'Other' });
    const r1 = await run('StemeDB-AddDataVolume', { InstanceId: other.instanceId });
    expect(step(r1, 'Plan')?.failureMessage).toContain(
      'is not tagged stemedb:managed=true and stemedb:deployment=StemeDB',
    );
    const node = await makeNode({ name: 'db-2' });
    await registry('db-2', node.instanceId, 'vol-0123456789abcdef0');
    const r2 = await run('StemeDB-AddDataVolume', { InstanceId: node.instanceId });
    expect(step(r2, 'Plan')?.failureMessage).toContain('names instance');
    expect((await allVolumes()).filter((v) => tagsOf(v)['stemedb:replaces'] !== undefined)).toEqual([]);
    for (const [name, value] of [
      ['InstanceId', 'i-123; reboot'],
      ['SizeGiB', '0'],
      ['SizeGiB', '100000'],
      ['VolumeType', 'gp4'],
      ['Filesystem', 'btrfs'],
      ['InodeRatio', '100'],
      ['NewVolumeId', 'vol-$(id)'],
      ['MountPoint', '/etc'],
      ['Reason', 'x; rm -rf /'],
    ] as const) {
      await expect(
        run('StemeDB-AddDataVolume', { InstanceId: node.instanceId, [name]: value }),
        `${name}=${value}`,
      ).rejects.toThrow(/InvalidAutomationExecutionParameters|not one of|does not match|allowed/);
    }
  });
});

describe('StemeDB-RetireDataVolume against moto', () => {
  async function replaced(hoursAgo: number): Promise<Node & { newVolumeId: string }> {
    const node = await makeNode();
    const record = await run('StemeDB-AddDataVolume', { InstanceId: node.instanceId });
    expect(record.status).toBe('Success');
    const newVolumeId = String(record.outputs['CreateVolume.VolumeId']?.[0]);
    const at = new Date(Date.now() - hoursAgo * 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    await ec2.send(
      new CreateTagsCommand({
        Resources: [node.volumeId],
        Tags: [{ Key: 'stemedb:replaced-at', Value: at }],
      }),
    );
    backends.commands.length = 0;
    return { ...node, newVolumeId };
  }

  it('refuses during the grace period, a volume not marked replaced and one the host still uses; then detaches (never deletes)', async () => {
    const node = await replaced(2);
    const retire = (extra: Record<string, string> = {}) =>
      run('StemeDB-RetireDataVolume', { InstanceId: node.instanceId, VolumeId: node.volumeId, ...extra });
    const early = await retire();
    expect(early.status).toBe('Failed');
    expect(step(early, 'Check')?.failureMessage).toMatch(/the grace period of vol-\w+ ends at \S+Z/);
    const wrong = await retire({ VolumeId: node.newVolumeId, GracePeriodHours: '1' });
    expect(step(wrong, 'Check')?.failureMessage).toContain(
      'is not a volume of this deployment that AddDataVolume replaced',
    );
    expect(backends.commands).toEqual([]);
    backends.host = () => ({
      exitCode: 3,
      json: { status: 'in-use', reason: '/dev/nvme1n1 mounted at /data' },
    });
    const busy = await retire({ GracePeriodHours: '1' });
    expect(busy.steps.map((s) => s.name)).toEqual([
      'Check',
      'BranchOnCheck',
      'HostCheck',
      'NotifyFailure',
      'FailExecution',
    ]);
    expect((await volume(node.volumeId)).State).toBe('in-use');
    backends.host = () => ({ exitCode: 0, json: { status: 'unused' } });
    const dry = await retire({ GracePeriodHours: '1', DryRun: 'true' });
    expect(dry.steps.at(-1)?.name).toBe('NotifyDryRun');
    expect((await volume(node.volumeId)).State).toBe('in-use');
    const record = await retire({ GracePeriodHours: '1' });
    expect(record.failureMessage).toBeUndefined();
    expect(record.steps.map((s) => s.name)).toEqual([
      'Check',
      'BranchOnCheck',
      'HostCheck',
      'BranchOnDryRun',
      'Detach',
      'Notify',
    ]);
    expect(backends.commands.at(-1)?.parameters).toMatchObject({
      Action: 'check-unused',
      VolumeId: node.volumeId,
    });
    const old = await volume(node.volumeId);
    expect(old.State).toBe('available');
    expect(tagsOf(old)['stemedb:retired-at']).toMatch(/Z$/);
    expect((await allVolumes()).map((v) => v.VolumeId)).toContain(node.volumeId);
    expect((await volume(node.newVolumeId)).State).toBe('in-use');
    // Again: already detached, nothing to do.
    const again = await retire({ GracePeriodHours: '0' });
    expect(again.steps.map((s) => s.name)).toEqual(['Check', 'BranchOnCheck', 'NotifyNothingToDo']);
  });
});

describe('errors moto cannot produce (the step Python with a stub boto3)', () => {
  const createEvents = {
    executionId: '0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b',
    dryRun: 'false',
    node: 'db-1',
    availabilityZone: AZ,
    oldVolumeId: 'vol-0aaaaaaaaaaaaaaaa',
    sizeGiB: '150',
    volumeType: 'gp3',
    iops: '3000',
    throughput: '125',
    reuseVolumeId: '',
    kmsKeyId: 'arn:aws:kms:eu-west-1:123456789012:key/k',
    deployment: 'StemeDB',
  };

  it('a volume that ends in error fails CreateVolume (and is reported, not retried into a second volume)', () => {
    let raised: PythonHandlerError | undefined;
    try {
      runStepScript(addDataVolume, 'CreateVolume', createEvents, {
        create_volume: [{ VolumeId: 'vol-0bbbbbbbbbbbbbbbb' }],
        describe_volumes: [{ Volumes: [{ State: 'creating' }] }, { Volumes: [{ State: 'error' }] }],
      });
    } catch (err) {
      raised = err as PythonHandlerError;
    }
    expect(raised?.message).toBe('Exception: volume vol-0bbbbbbbbbbbbbbbb is error after CreateVolume');
    expect(raised?.calls.filter((c) => c.op === 'create_volume')).toHaveLength(1);
    expect(raised?.calls[0]?.args).toMatchObject({
      ClientToken: createEvents.executionId,
      Encrypted: true,
      Iops: 3000,
    });
  });

  it('an EBS capacity error in CreateVolume fails the step with its code', () => {
    expect(() =>
      runStepScript(addDataVolume, 'CreateVolume', createEvents, {
        create_volume: [{ error: 'InsufficientVolumeCapacity' }],
      }),
    ).toThrow(/InsufficientVolumeCapacity/);
    expect(() =>
      runStepScript(
        addDataVolume,
        'CreateVolume',
        { ...createEvents, dryRun: 'true' },
        {
          create_volume: [{ error: 'UnauthorizedOperation' }],
        },
      ),
    ).toThrow(/CreateVolume \(dry run\) refused: UnauthorizedOperation/);
  });

  it('AttachVolume refuses a volume attached elsewhere and gives up when the attachment never completes', () => {
    const events = {
      instanceId: 'i-0123456789abcdef0',
      volumeId: 'vol-0bbbbbbbbbbbbbbbb',
      device: '/dev/sdg',
    };
    expect(() =>
      runStepScript(addDataVolume, 'AttachVolume', events, {
        describe_volumes: [
          { Volumes: [{ Attachments: [{ InstanceId: 'i-0fedcba9876543210', State: 'attached' }] }] },
        ],
      }),
    ).toThrow('volume vol-0bbbbbbbbbbbbbbbb is attached to i-0fedcba9876543210');
    const stuck = (() => {
      try {
        runStepScript(addDataVolume, 'AttachVolume', events, {
          describe_volumes: [
            { Volumes: [{ Attachments: [] }] },
            { Volumes: [{ Attachments: [{ InstanceId: events.instanceId, State: 'attaching' }] }] },
          ],
          attach_volume: [{}],
        });
      } catch (err) {
        return err as PythonHandlerError;
      }
      return undefined;
    })();
    expect(stuck?.message).toBe(
      'Exception: volume vol-0bbbbbbbbbbbbbbbb is not attached to i-0123456789abcdef0 after 600 s',
    );
    expect(stuck?.calls.filter((c) => c.op === 'attach_volume')).toHaveLength(1);
  });

  it('Plan finds no free device name when /dev/sdf to /dev/sdp are all taken', () => {
    const instance = {
      Tags: [
        { Key: 'stemedb:managed', Value: 'true' },
        { Key: 'stemedb:deployment', Value: 'StemeDB' },
      ],
      Placement: { AvailabilityZone: AZ },
      RootDeviceName: '/dev/xvda',
      BlockDeviceMappings: 'fghijklmnop'
        .split('')
        .map((l, i) => ({ DeviceName: i % 2 ? `/dev/xvd${l}` : `/dev/sd${l}` })),
    };
    const old = {
      VolumeId: 'vol-0aaaaaaaaaaaaaaaa',
      Size: 100,
      VolumeType: 'gp3',
      Tags: [{ Key: 'stemedb:node', Value: 'db-1' }],
      Attachments: [{ InstanceId: 'i-0123456789abcdef0', State: 'attached' }],
    };
    const plan = addDataVolume.mainSteps.find((s) => s.name === 'Plan') as {
      inputs: { InputPayload: Record<string, string> };
    };
    const payload = plan.inputs.InputPayload;
    expect(() =>
      runStepScript(
        addDataVolume,
        'Plan',
        {
          ...payload,
          instanceId: 'i-0123456789abcdef0',
          sizeGiB: '',
          volumeType: '',
          filesystem: '',
          inodeRatio: '',
          newVolumeId: '',
        },
        {
          describe_instances: [{ Reservations: [{ Instances: [instance] }] }],
          describe_volumes: [{ Volumes: [old] }],
          get_parameter: [
            {
              Parameter: {
                Value: JSON.stringify({ instanceId: 'i-0123456789abcdef0', volumeId: old.VolumeId }),
              },
            },
          ],
        },
      ),
    ).toThrow('no free device name from /dev/sdf to /dev/sdp');
  });
});

describe('the Plan step sizes as ExpandVolume does (lambda/shared/sizing-policy.ts)', () => {
  it('gives the same target, or the same "at the cap", on a table of sizes, types and policies', () => {
    const policies = [
      { growPercent: 50, minGrowGiB: 10, maxSizeGiB: 4096 },
      { growPercent: 10, minGrowGiB: 1, maxSizeGiB: 100 },
      { growPercent: 100, minGrowGiB: 50, maxSizeGiB: 65_536 },
      { growPercent: 1, minGrowGiB: 1, maxSizeGiB: 16_384 },
      { growPercent: 33, minGrowGiB: 7, maxSizeGiB: 1000 },
    ];
    const sizes = [
      1, 7, 8, 10, 20, 99, 100, 101, 1000, 2730, 2731, 2732, 4000, 4095, 4096, 5000, 16_383, 16_384, 65_535,
      65_536,
    ];
    const types = ['gp3', 'gp2', 'io2', 'st1', 'standard'];
    const cases = policies.flatMap((p) =>
      types.flatMap((t) => sizes.map((s) => ({ ...p, current: s, type: t }))),
    );
    const script = stepScript(addDataVolume, 'Plan');
    const parity = runPythonHandler<Array<number | null>>(
      {
        script: `${script.script}\n\ndef parity(events, context):\n    return [decide_size(c['current'], c['type'], c['growPercent'], c['minGrowGiB'], c['maxSizeGiB'], events['limits'])[0] for c in events['cases']]\n`,
        handler: 'parity',
      },
      { cases, limits: VOLUME_LIMITS },
    ).result;
    const expected = cases.map((c) => {
      const d = decideTargetSize(
        { ...c, warningFreePercent: 20 },
        { currentSizeGiB: c.current, volumeType: c.type },
      );
      return d.kind === 'grow' ? d.targetSizeGiB : null;
    });
    expect(parity).toEqual(expected);
    expect(cases.length).toBe(500);
  });
});
