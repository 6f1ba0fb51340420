import {
  CloudWatchClient,
  DeleteAlarmsCommand,
  type MetricDataQuery,
  PutMetricAlarmCommand,
  type PutMetricAlarmCommandInput,
} from '@aws-sdk/client-cloudwatch';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  AttachVolumeCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeImagesCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateAccessKeyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  DeleteRolePolicyCommand,
  IAMClient,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateBucketCommand,
  PutBucketEncryptionCommand,
  PutBucketPolicyCommand,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { DeleteParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { DEFAULT_CONFIG } from '../../lib/config';
import { DEPLOYMENT_TAG_KEY } from '../../lib/tags';
import type { AwsCredentials, Principal } from '../support/automation-runner';
import { AWS_MANAGED_POLICIES } from '../support/iam-evaluator';
import type { ResolvedResource, ResolvedRole, ResolvedTemplate } from '../support/resolved-template';

/**
 * The drill's AWS account in moto_server: what `cdk deploy` would create, made from the resolved
 * synthesized template, plus what lies outside the stack (the node's instance and its role).
 *
 * Identity: moto starts with authorization off; `provision` creates an administrator user (for the
 * drill's own set-up and observations), every role of the template with its policies, and the
 * node's instance role, assumes each role once, and then turns moto's request authorization on
 * (`/moto-api/reset-auth` 0, the server-side form of INITIAL_NO_AUTH_ACTION_COUNT). From then on
 * every request needs a valid signature of a known key and an allowing policy.
 *
 * moto's own evaluator checks the resource only for S3, SQS, IAM and STS (all other services ask
 * it about `*`), ignores resource policies, and treats a statement whose condition keys it does
 * not receive as an explicit deny. So moto gets a projection of each policy ({@link motoPolicy}):
 * the same actions, the resources where moto compares them, conditions dropped, conditioned
 * denies dropped. That makes moto reject any call whose ACTION a principal was not granted (or
 * an S3 key outside its resources). The full decision (resources, tags, conditions, resource
 * policies) is made by the IAM evaluator, statically for every call in the code, and at run time
 * for every call the drill serves itself (Automation, Run Command, Lambda invoke).
 */

type Json = Record<string, unknown>;
type Statement = {
  Effect: string;
  Principal?: unknown;
  Action?: string | string[];
  NotAction?: unknown;
  Resource?: string | string[];
  Condition?: unknown;
  Sid?: string;
};

/** Services whose requests moto authorizes against the real resource ARN (others: `*`). */
const MOTO_RESOURCE_SERVICES = new Set(['s3', 'sqs', 'iam', 'sts']);

/** What moto can check of a policy (see the header): one statement per service, conditions dropped. */
export function motoPolicy(document: Json): Json {
  const statements = ([] as Statement[]).concat((document.Statement as Statement | Statement[]) ?? []);
  const out: Statement[] = [];
  for (const s of statements) {
    if (s.NotAction !== undefined)
      throw new Error(`motoPolicy: NotAction is not projected (${s.Sid ?? 'statement'})`);
    if (s.Effect === 'Deny' && s.Condition !== undefined) continue;
    const actions = ([] as string[]).concat(s.Action ?? []);
    const byService = new Map<string, string[]>();
    for (const a of actions) {
      const service = a.split(':')[0] ?? '';
      byService.set(service, [...(byService.get(service) ?? []), a]);
    }
    for (const [service, serviceActions] of byService) {
      // moto names CloudWatch's actions by its endpoint prefix (`monitoring:PutMetricData`).
      const named =
        service === 'cloudwatch' ? serviceActions.map((a) => a.replace(/^cloudwatch:/, 'monitoring:')) : [];
      out.push({
        ...(s.Principal === undefined ? {} : { Principal: s.Principal }),
        Effect: s.Effect,
        Action: [...serviceActions, ...named],
        Resource: MOTO_RESOURCE_SERVICES.has(service) ? (s.Resource ?? '*') : '*',
      });
    }
  }
  return { Version: '2012-10-17', Statement: out };
}

export interface NodeSpec {
  readonly name: string;
  /** Size of the volume moto holds (the loop device starts at the same size, in GiB). */
  readonly volumeGiB: number;
}

export interface NodeResources {
  readonly name: string;
  readonly instanceId: string;
  readonly volumeId: string;
  readonly availabilityZone: string;
}

export interface MotoClients {
  readonly ec2: EC2Client;
  readonly iam: IAMClient;
  readonly s3: S3Client;
  readonly sns: SNSClient;
  readonly sqs: SQSClient;
  readonly ssm: SSMClient;
  readonly cloudwatch: CloudWatchClient;
  readonly sts: STSClient;
  readonly dynamodb: DynamoDBClient;
}

export function motoClients(endpoint: string, region: string, credentials: AwsCredentials): MotoClients {
  const config = { endpoint, region, credentials, maxAttempts: 2, forcePathStyle: true };
  return {
    ec2: new EC2Client(config),
    iam: new IAMClient(config),
    s3: new S3Client(config),
    sns: new SNSClient(config),
    sqs: new SQSClient(config),
    ssm: new SSMClient(config),
    cloudwatch: new CloudWatchClient(config),
    sts: new STSClient(config),
    dynamodb: new DynamoDBClient(config),
  };
}

/** Managed tags as the stack applies them (AdoptedDataVolume's custom resource; the node's instance by its owner). */
export function nodeTags(node: string): { Key: string; Value: string }[] {
  return [
    { Key: 'stemedb:managed', Value: 'true' },
    { Key: 'stemedb:node', Value: node },
    // The drill deploys with the default prefix (drill.ts PREFIX); importing it would be a cycle.
    { Key: DEPLOYMENT_TAG_KEY, Value: DEFAULT_CONFIG.prefix },
  ];
}

/** Step 1, before synth: the instances and volumes the config names (they exist before the stack). */
export async function createNodes(
  c: MotoClients,
  availabilityZone: string,
  nodes: readonly NodeSpec[],
): Promise<NodeResources[]> {
  const images = await c.ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
  const imageId = images.Images?.[0]?.ImageId;
  const out: NodeResources[] = [];
  for (const node of nodes) {
    const run = await c.ec2.send(
      new RunInstancesCommand({
        ImageId: imageId,
        MinCount: 1,
        MaxCount: 1,
        InstanceType: 'm7g.large',
        Placement: { AvailabilityZone: availabilityZone },
        TagSpecifications: [{ ResourceType: 'instance', Tags: nodeTags(node.name) }],
      }),
    );
    const instanceId = run.Instances?.[0]?.InstanceId ?? '';
    const volume = await c.ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: availabilityZone,
        Size: node.volumeGiB,
        VolumeType: 'gp3',
        Encrypted: true,
      }),
    );
    const volumeId = volume.VolumeId ?? '';
    await c.ec2.send(
      new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: '/dev/sdf' }),
    );
    // What AdoptedDataVolume's custom resource does at deploy time.
    await c.ec2.send(new CreateTagsCommand({ Resources: [volumeId], Tags: nodeTags(node.name) }));
    out.push({ name: node.name, instanceId, volumeId, availabilityZone });
  }
  return out;
}

export interface ProvisionedAccount {
  /** Every role of the template (by role name), and the node's instance role, as a session. */
  readonly principals: ReadonlyMap<string, Principal>;
  /** Role name of each Lambda function (by function name). */
  readonly functionRoles: ReadonlyMap<string, string>;
  /** The SQS queue subscribed to the notification topic: every notification lands here. */
  readonly notificationQueueUrl: string;
  readonly topicArn: string;
  readonly bucketName: string;
}

const EC2_TRUST: Json = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
};

/** An administrator for the drill's own set-up and observations (never a principal of the automation). */
export async function createAdministrator(c: MotoClients): Promise<AwsCredentials> {
  await c.iam.send(new CreateUserCommand({ UserName: 'drill-admin' }));
  await c.iam.send(
    new PutUserPolicyCommand({
      UserName: 'drill-admin',
      PolicyName: 'administrator',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
      }),
    }),
  );
  const key = await c.iam.send(new CreateAccessKeyCommand({ UserName: 'drill-admin' }));
  return {
    accessKeyId: key.AccessKey?.AccessKeyId ?? '',
    secretAccessKey: key.AccessKey?.SecretAccessKey ?? '',
  };
}

const PARTITION = { Ref: 'AWS::Partition' };
const REGION_REF = { Ref: 'AWS::Region' };
const ACCOUNT_ID = { Ref: 'AWS::AccountId' };
const cfnJoin = (...parts: unknown[]): Json => ({ 'Fn::Join': ['', parts] });
const ssmArn = (resource: string): Json =>
  cfnJoin('arn:', PARTITION, ':ssm:', REGION_REF, ':', ACCOUNT_ID, `:${resource}`);

/** The drill's operator role (not part of the stack): starts documents as a human would. */
export const OPERATOR_ROLE = 'drill-operator';
/** The instance role of a drill node (outside the stack: the platform team's). */
export const instanceRoleName = (node: string): string => `drill-instance-${node}`;

/**
 * The account the drill deploys into: the synthesized template plus what lives outside the stack
 * as CloudFormation resources of the same template, so the evaluator and moto read one source:
 * each node's instance role (the node's managed policy from the stack, attached as the platform
 * team would, and `AmazonSSMManagedInstanceCore`) and an operator role that starts documents from
 * the console (what a human needs: StartAutomationExecution of this stack's documents, PassRole of
 * the automation role to SSM, read executions).
 */
export function accountTemplate(template: Json, nodes: readonly NodeResources[], prefix: string): Json {
  const resources = { ...(template.Resources as Record<string, Json>) };
  const entries = Object.entries(resources);
  const automationRole = entries.find(
    ([, r]) =>
      r.Type === 'AWS::IAM::Role' &&
      JSON.stringify((r.Properties as Json).RoleName ?? '').includes('-disk-automation-'),
  );
  if (automationRole === undefined) throw new Error('the template has no automation role');
  for (const node of nodes) {
    const policy = entries.find(
      ([, r]) =>
        r.Type === 'AWS::IAM::ManagedPolicy' &&
        (r.Properties as Json).ManagedPolicyName === `${prefix}-node-${node.name}`,
    );
    if (policy === undefined) throw new Error(`the template has no managed policy for node ${node.name}`);
    resources[`DrillInstanceRole${node.name.replace(/[^A-Za-z0-9]/g, '')}`] = {
      Type: 'AWS::IAM::Role',
      Properties: {
        RoleName: instanceRoleName(node.name),
        AssumeRolePolicyDocument: EC2_TRUST,
        ManagedPolicyArns: [
          { Ref: policy[0] },
          cfnJoin('arn:', PARTITION, ':iam::aws:policy/AmazonSSMManagedInstanceCore'),
        ],
      },
    };
  }
  resources.DrillOperatorRole = {
    Type: 'AWS::IAM::Role',
    Properties: {
      RoleName: OPERATOR_ROLE,
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: cfnJoin('arn:', PARTITION, ':iam::', ACCOUNT_ID, ':root') },
            Action: 'sts:AssumeRole',
          },
        ],
      },
      Policies: [
        {
          PolicyName: 'operator',
          PolicyDocument: {
            Version: '2012-10-17',
            Statement: [
              {
                Effect: 'Allow',
                Action: 'ssm:StartAutomationExecution',
                Resource: [
                  ssmArn(`automation-definition/${prefix}-*`),
                  ssmArn(`document/${prefix}-*`),
                  ssmArn('automation-execution/*'),
                ],
              },
              { Effect: 'Allow', Action: ['ssm:DescribeAutomationExecutions'], Resource: '*' },
              {
                Effect: 'Allow',
                Action: ['ssm:GetAutomationExecution'],
                Resource: ssmArn('automation-execution/*'),
              },
              {
                Effect: 'Allow',
                Action: 'iam:PassRole',
                Resource: { 'Fn::GetAtt': [automationRole[0], 'Arn'] },
                Condition: { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } },
              },
            ],
          },
        },
      ],
    },
  };
  return { ...template, Resources: resources };
}

/** Step 2, after synth: what `cdk deploy` (and the platform team) create, from the resolved account template. */
export async function provisionFromTemplate(
  c: MotoClients,
  resolved: ResolvedTemplate,
): Promise<ProvisionedAccount> {
  // Identity: every role with its policies (moto's projection of them).
  const roleNames: string[] = [];
  for (const role of resolved.roles()) {
    await c.iam.send(
      new CreateRoleCommand({
        RoleName: role.roleName,
        AssumeRolePolicyDocument: JSON.stringify(role.trustPolicy),
      }),
    );
    await putRolePolicies(c, role);
    roleNames.push(role.roleName);
  }

  // Storage and messaging.
  const bucket = resolved.resources('AWS::S3::Bucket');
  let bucketName = '';
  for (const b of bucket) {
    await c.s3.send(
      new CreateBucketCommand({
        Bucket: b.ref,
        CreateBucketConfiguration: { LocationConstraint: resolved.target.region as never },
      }),
    );
    await c.s3.send(
      new PutBucketVersioningCommand({ Bucket: b.ref, VersioningConfiguration: { Status: 'Enabled' } }),
    );
    // CloudFormation's BucketEncryption → the API's ServerSideEncryptionConfiguration.
    const rules = ((b.properties.BucketEncryption as Json | undefined)?.ServerSideEncryptionConfiguration ??
      []) as Json[];
    if (rules.length > 0) {
      await c.s3.send(
        new PutBucketEncryptionCommand({
          Bucket: b.ref,
          ServerSideEncryptionConfiguration: {
            Rules: rules.map((r) => {
              const d = (r.ServerSideEncryptionByDefault ?? {}) as Json;
              return {
                BucketKeyEnabled: r.BucketKeyEnabled as boolean | undefined,
                ApplyServerSideEncryptionByDefault: {
                  SSEAlgorithm: d.SSEAlgorithm as 'aws:kms' | 'AES256',
                  KMSMasterKeyID: d.KMSMasterKeyID as string | undefined,
                },
              };
            }),
          },
        }),
      );
    }
    if (b.properties.LoggingConfiguration !== undefined) bucketName = b.ref;
  }
  for (const p of resolved.resourcePolicies().filter((r) => r.kind === 'bucket')) {
    const name = p.resourceArn.split(':::')[1] ?? '';
    // moto enforces a bucket policy's denies, but not their conditions: the same projection.
    await c.s3.send(
      new PutBucketPolicyCommand({ Bucket: name, Policy: JSON.stringify(motoPolicy(p.document as Json)) }),
    );
  }
  const [topic] = resolved.resources('AWS::SNS::Topic');
  if (topic === undefined) throw new Error('the template has no SNS topic');
  const created = await c.sns.send(new CreateTopicCommand({ Name: String(topic.properties.TopicName) }));
  const topicArn = created.TopicArn ?? '';
  if (topicArn !== topic.ref) throw new Error(`moto named the topic ${topicArn}, the template ${topic.ref}`);
  const inbox = await c.sqs.send(new CreateQueueCommand({ QueueName: 'drill-notifications' }));
  const inboxUrl = inbox.QueueUrl ?? '';
  const inboxArn = (
    await c.sqs.send(new GetQueueAttributesCommand({ QueueUrl: inboxUrl, AttributeNames: ['QueueArn'] }))
  ).Attributes?.QueueArn;
  await c.sns.send(
    new SubscribeCommand({
      TopicArn: topicArn,
      Protocol: 'sqs',
      Endpoint: inboxArn,
      Attributes: { RawMessageDelivery: 'false' },
    }),
  );

  // The node registry and the other parameters.
  for (const p of resolved.resources('AWS::SSM::Parameter')) {
    await c.ssm.send(
      new PutParameterCommand({
        Name: String(p.properties.Name),
        Value: String(p.properties.Value),
        Type: 'String',
      }),
    );
  }

  // DynamoDB tables (the router's lock table), with the keys the template declares.
  for (const t of resolved.resources('AWS::DynamoDB::Table')) {
    const props = t.properties as {
      TableName: string;
      KeySchema: { AttributeName: string; KeyType: 'HASH' | 'RANGE' }[];
      AttributeDefinitions: { AttributeName: string; AttributeType: 'S' | 'N' | 'B' }[];
    };
    await c.dynamodb.send(
      new CreateTableCommand({
        TableName: String(props.TableName),
        KeySchema: props.KeySchema,
        AttributeDefinitions: props.AttributeDefinitions,
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
  }

  // Alarms (their state is set by the drill when it fires one).
  for (const a of resolved.resources('AWS::CloudWatch::Alarm')) {
    const props = a.properties as unknown as PutMetricAlarmCommandInput & { Metrics?: MetricDataQuery[] };
    await c.cloudwatch.send(new PutMetricAlarmCommand({ ...props, ActionsEnabled: true }));
  }

  // Sessions: each role assumed once (before authorization is turned on, like a deployed trust).
  const principals = new Map<string, Principal>();
  for (const roleName of roleNames) {
    const arn = `arn:aws:iam::${resolved.target.account}:role/${roleName}`;
    const out = await c.sts.send(
      new AssumeRoleCommand({
        RoleArn: arn,
        RoleSessionName: `drill-${roleName}`.slice(0, 64),
        DurationSeconds: 43_200,
      }),
    );
    const cred = out.Credentials;
    principals.set(roleName, {
      name: roleName,
      arn,
      credentials: {
        accessKeyId: cred?.AccessKeyId ?? '',
        secretAccessKey: cred?.SecretAccessKey ?? '',
        sessionToken: cred?.SessionToken,
      },
    });
  }
  const functionRoles = new Map<string, string>();
  const roleByArn = new Map(resolved.roles().map((r) => [r.arn, r.roleName]));
  for (const f of resolved.resources('AWS::Lambda::Function')) {
    const roleName = roleByArn.get(String(f.properties.Role));
    if (roleName !== undefined) functionRoles.set(f.ref, roleName);
  }
  return {
    principals,
    functionRoles,
    notificationQueueUrl: inboxUrl,
    topicArn,
    bucketName,
  };
}

/** A role's policies in moto (their projection), one inline policy each; returns their names. */
async function putRolePolicies(c: MotoClients, role: ResolvedRole): Promise<string[]> {
  const documents = role.policies.map((p) => ({ name: p.name, document: p.document as Json }));
  // moto has no AWS managed policies loaded: the one the drill's principals use, as AWS publishes
  // it (the IAM evaluator's copy, so moto and the evaluator decide on the same policy).
  if (role.awsManagedPolicyArns.some((a) => a.endsWith('/AmazonSSMManagedInstanceCore')))
    documents.push({
      name: 'AmazonSSMManagedInstanceCore',
      document: AWS_MANAGED_POLICIES.AmazonSSMManagedInstanceCore as Json,
    });
  const names: string[] = [];
  for (const [i, p] of documents.entries()) {
    const name = `${p.name.replace(/[^A-Za-z0-9+=,.@_-]/g, '-')}-${i}`.slice(0, 128);
    await c.iam.send(
      new PutRolePolicyCommand({
        RoleName: role.roleName,
        PolicyName: name,
        PolicyDocument: JSON.stringify(motoPolicy(p.document)),
      }),
    );
    names.push(name);
  }
  return names;
}

/** One resource of the account template that a re-deploy adds, removes or changes. */
export interface ResourceChange {
  readonly logicalId: string;
  readonly type: string;
  readonly change: 'added' | 'removed' | 'modified';
  /** What the drill did for it in moto, or why nothing was needed. */
  applied?: string;
}

/** JSON with object keys sorted: equal for equal values whatever the key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Json).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** A function's properties but its code: a re-deploy's synth skips bundling (other asset hashes, same code). */
function comparable(r: ResolvedResource): unknown {
  if (r.type !== 'AWS::Lambda::Function') return r.properties;
  const { Code: _code, ...rest } = r.properties;
  return rest;
}

/** Every resource added, removed or changed (resolved properties) from `from` to `to`. */
export function templateChanges(from: ResolvedTemplate, to: ResolvedTemplate): ResourceChange[] {
  const before = new Map(from.resources().map((r) => [r.logicalId, r]));
  const after = new Map(to.resources().map((r) => [r.logicalId, r]));
  const out: ResourceChange[] = [];
  for (const [id, r] of after) {
    const old = before.get(id);
    if (old === undefined) out.push({ logicalId: id, type: r.type, change: 'added' });
    else if (old.type !== r.type || canonical(comparable(old)) !== canonical(comparable(r)))
      out.push({ logicalId: id, type: r.type, change: 'modified' });
  }
  for (const [id, r] of before)
    if (!after.has(id)) out.push({ logicalId: id, type: r.type, change: 'removed' });
  return out;
}

/** Served by the drill from the deployed template (moto holds nothing of them): no call needed. */
const SERVED_FROM_TEMPLATE: Readonly<Record<string, string>> = {
  'AWS::SSM::Document': 'served from the template by the local Automation runner',
  'AWS::Lambda::Function': 'run from the template (environment) with the first synth’s bundle',
  'AWS::CDK::Metadata': 'metadata only',
};
const IAM_TYPES = new Set(['AWS::IAM::Role', 'AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']);

/**
 * Applies `changes` (from {@link templateChanges}) to moto as CloudFormation would update the
 * stack: SSM parameters put (or deleted), alarms put (or deleted), the policies of every role whose
 * policies changed put again, an AwsCustomResource's EC2 `createTags` made on create and update.
 * Any other change fails: the drill never pretends to have deployed what it cannot apply.
 */
export async function applyTemplateChanges(
  c: MotoClients,
  from: ResolvedTemplate,
  to: ResolvedTemplate,
  changes: ResourceChange[],
): Promise<void> {
  const unsupported = changes.filter(
    (ch) =>
      SERVED_FROM_TEMPLATE[ch.type] === undefined &&
      !IAM_TYPES.has(ch.type) &&
      !['AWS::SSM::Parameter', 'AWS::CloudWatch::Alarm'].includes(ch.type) &&
      !(ch.type === 'Custom::AWS' && ch.change !== 'added'),
  );
  if (unsupported.length > 0)
    throw new Error(
      `the drill cannot deploy ${unsupported.map((ch) => `${ch.change} ${ch.type} ${ch.logicalId}`).join(', ')}`,
    );
  for (const ch of changes) {
    const served = SERVED_FROM_TEMPLATE[ch.type];
    if (served !== undefined) {
      ch.applied = served;
      continue;
    }
    if (IAM_TYPES.has(ch.type)) continue; // below, per role
    if (ch.change === 'removed') {
      const old = from.resource(ch.logicalId);
      if (ch.type === 'AWS::SSM::Parameter') {
        await c.ssm.send(new DeleteParameterCommand({ Name: String(old.properties.Name) }));
        ch.applied = `DeleteParameter ${String(old.properties.Name)}`;
      } else if (ch.type === 'AWS::CloudWatch::Alarm') {
        await c.cloudwatch.send(new DeleteAlarmsCommand({ AlarmNames: [String(old.properties.AlarmName)] }));
        ch.applied = `DeleteAlarms ${String(old.properties.AlarmName)}`;
      } else ch.applied = 'no onDelete call';
      continue;
    }
    const r = to.resource(ch.logicalId);
    if (ch.type === 'AWS::SSM::Parameter') {
      await c.ssm.send(
        new PutParameterCommand({
          Name: String(r.properties.Name),
          Value: String(r.properties.Value),
          Type: 'String',
          Overwrite: true,
        }),
      );
      ch.applied = `PutParameter ${String(r.properties.Name)} = ${String(r.properties.Value)}`;
    } else if (ch.type === 'AWS::CloudWatch::Alarm') {
      const props = r.properties as unknown as PutMetricAlarmCommandInput & { Metrics?: MetricDataQuery[] };
      await c.cloudwatch.send(new PutMetricAlarmCommand({ ...props, ActionsEnabled: true }));
      ch.applied = `PutMetricAlarm ${String(props.AlarmName)}`;
    } else {
      ch.applied = await customResourceCall(c, r, ch.change === 'added' ? 'Create' : 'Update');
    }
  }
  // IAM: every role whose policies (inline, attached customer managed, AWS managed) changed.
  const fromRoles = new Map(from.roles().map((r) => [r.roleName, r]));
  const changedRoles = to.roles().filter((r) => {
    const old = fromRoles.get(r.roleName);
    return (
      old === undefined ||
      canonical([old.policies, old.awsManagedPolicyArns]) !== canonical([r.policies, r.awsManagedPolicyArns])
    );
  });
  const added = changedRoles.filter((r) => !fromRoles.has(r.roleName));
  if (added.length > 0 || from.roles().some((r) => !to.roles().some((x) => x.roleName === r.roleName)))
    throw new Error(
      `the drill cannot deploy a role added or removed (${added.map((r) => r.roleName).join(', ') || 'removed'}): sessions are assumed once`,
    );
  for (const role of changedRoles) {
    const names = await putRolePolicies(c, role);
    const existing =
      (await c.iam.send(new ListRolePoliciesCommand({ RoleName: role.roleName }))).PolicyNames ?? [];
    for (const stale of existing.filter((n) => !names.includes(n)))
      await c.iam.send(new DeleteRolePolicyCommand({ RoleName: role.roleName, PolicyName: stale }));
  }
  for (const ch of changes.filter((x) => IAM_TYPES.has(x.type)))
    ch.applied = `role policies put again: ${changedRoles.map((r) => r.roleName).join(', ') || 'no role policy changed'}`;
}

/** An AwsCustomResource's SDK call for `event` (its `Create`/`Update` JSON), made as its provider would. */
async function customResourceCall(
  c: MotoClients,
  r: ResolvedResource,
  event: 'Create' | 'Update',
): Promise<string> {
  const text = r.properties[event];
  if (typeof text !== 'string') throw new Error(`${r.logicalId} has no ${event} call`);
  const call = JSON.parse(text) as { service?: string; action?: string; parameters?: Json };
  if (call.service === 'EC2' && call.action === 'createTags') {
    const p = call.parameters as { Resources: string[]; Tags: Array<{ Key: string; Value: string }> };
    await c.ec2.send(new CreateTagsCommand({ Resources: p.Resources, Tags: p.Tags }));
    return `CreateTags ${p.Resources.join(', ')}: ${p.Tags.map((t) => `${t.Key}=${t.Value}`).join(', ')}`;
  }
  throw new Error(`the drill cannot deploy ${r.logicalId}: ${call.service}.${call.action} is not emulated`);
}

/** Turns moto's request authorization on: from now on every request is signed and authorized. */
export async function enableAuthorization(endpoint: string): Promise<void> {
  const res = await fetch(`${endpoint}/moto-api/reset-auth`, { method: 'POST', body: '0' });
  if (!res.ok) throw new Error(`moto reset-auth answered ${res.status}`);
}
