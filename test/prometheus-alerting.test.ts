/**
 * lib/prometheus-alerting.ts: the Prometheus alert topic, the router's subscription, AMP's publish
 * and key statements, the workspace's alert manager definition and the self-managed publisher
 * policy, as the synthesized template holds them (the permission test evaluates the same policies).
 */
import { readFileSync } from 'node:fs';
import { App, Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderAmpAlertManagerDefinition } from '../lib/alertmanager-config';
import { PrometheusAlerting, type PrometheusAlertingProps } from '../lib/prometheus-alerting';
import { ResolvedTemplate } from './support/resolved-template';
import { type SynthResult, synthStack, TWO_NODES_FILE } from './support/synth';

const twoNodes = JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')) as Record<string, unknown>;
const WORKSPACE = 'ws-12345678-abcd-ef01-2345-6789abcdef01';
const TARGET = { account: '111122223333', region: 'eu-west-1', stackName: 'StemeDB-Disk' } as const;
const WORKSPACE_ARN = `arn:aws:aps:eu-west-1:111122223333:workspace/${WORKSPACE}`;
const TOPIC_ARN = 'arn:aws:sns:eu-west-1:111122223333:StemeDB-prometheus-alerts';

type Statement = Record<string, unknown>;

function statements(doc: unknown): Statement[] {
  return [(doc as { Statement: unknown }).Statement].flat() as Statement[];
}

function customResources(t: ResolvedTemplate, action: string) {
  return t
    .resources('Custom::AWS')
    .filter((c) => (JSON.parse(String(c.properties.Create)) as { action: string }).action === action);
}

describe('with an AMP workspace (the two-node fixture)', () => {
  let r: SynthResult;
  let t: ResolvedTemplate;
  beforeAll(() => {
    r = synthStack(twoNodes);
    t = new ResolvedTemplate(r.template.toJSON(), TARGET);
  });

  it('creates the alert topic, encrypted with the stack key', () => {
    r.template.hasResourceProperties('AWS::SNS::Topic', {
      TopicName: 'StemeDB-prometheus-alerts',
      KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] },
    });
  });

  it("lets only this workspace's Alertmanager of this account publish, over TLS only", () => {
    const policy = t.resourcePolicies().find((p) => p.resourceArn === TOPIC_ARN);
    expect(policy, 'the alert topic has a policy').toBeDefined();
    expect(statements(policy?.document)).toEqual([
      {
        Sid: 'AllowPublishThroughSSLOnly',
        Effect: 'Deny',
        Principal: '*',
        Action: 'sns:Publish',
        Resource: TOPIC_ARN,
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      },
      {
        Sid: 'AllowThisWorkspacesAlertmanager',
        Effect: 'Allow',
        Principal: { Service: 'aps.amazonaws.com' },
        Action: ['sns:GetTopicAttributes', 'sns:Publish'],
        Resource: TOPIC_ARN,
        Condition: {
          ArnEquals: { 'aws:SourceArn': WORKSPACE_ARN },
          StringEquals: { 'aws:SourceAccount': TARGET.account },
        },
      },
    ]);
  });

  it('lets aps.amazonaws.com of this account use the stack key for the encrypted topic', () => {
    const key = t.resourcePolicies().find((p) => p.kind === 'key');
    expect(statements(key?.document)).toContainEqual({
      Sid: 'AllowPrometheusAlertmanagerToUseTheTopicKey',
      Effect: 'Allow',
      Principal: { Service: 'aps.amazonaws.com' },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      Resource: '*',
      Condition: { StringEquals: { 'aws:SourceAccount': TARGET.account } },
    });
  });

  it('subscribes the router, lets SNS invoke it for this topic only, and tells it the topic', () => {
    const router = t
      .resources('AWS::Lambda::Function')
      .find((f) => f.properties.FunctionName === 'StemeDB-alarm-router');
    const subscriptions = t
      .resources('AWS::SNS::Subscription')
      .filter((x) => x.properties.TopicArn === TOPIC_ARN);
    const deadLetters = t
      .resources('AWS::SQS::Queue')
      .find((q) => q.properties.QueueName === 'StemeDB-disk-router-dead-letters');
    expect(subscriptions.map((x) => x.properties)).toEqual([
      {
        Protocol: 'lambda',
        TopicArn: TOPIC_ARN,
        Endpoint: router?.attributes.Arn,
        // A notification SNS could not deliver after its retries goes to the router's dead-letter queue.
        RedrivePolicy: { deadLetterTargetArn: deadLetters?.attributes.Arn },
      },
    ]);
    const queueStatements = t
      .resources('AWS::SQS::QueuePolicy')
      .flatMap((p) => (p.properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement)
      .filter((statement) => statement.Resource === deadLetters?.attributes.Arn);
    expect(queueStatements).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Principal: { Service: 'sns.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: deadLetters?.attributes.Arn,
        Condition: { ArnEquals: { 'aws:SourceArn': TOPIC_ARN } },
      }),
    );
    const invokes = t
      .resources('AWS::Lambda::Permission')
      .filter((p) => p.properties.Principal === 'sns.amazonaws.com');
    expect(invokes.map((p) => p.properties)).toEqual([
      {
        Action: 'lambda:InvokeFunction',
        FunctionName: router?.attributes.Arn,
        Principal: 'sns.amazonaws.com',
        SourceArn: TOPIC_ARN,
      },
    ]);
    expect(router?.properties.Environment).toMatchObject({
      Variables: { PROMETHEUS_TOPIC_ARN: TOPIC_ARN },
    });
  });

  it('creates the workspace alert manager definition (create, put on update, delete by the physical ID) from the renderer', () => {
    const [definition] = customResources(t, 'createAlertManagerDefinition');
    expect(definition, 'one alert manager definition resource').toBeDefined();
    const create = JSON.parse(String(definition?.properties.Create));
    const update = JSON.parse(String(definition?.properties.Update));
    const del = JSON.parse(String(definition?.properties.Delete));
    const expected = renderAmpAlertManagerDefinition({
      topicArn: TOPIC_ARN,
      region: TARGET.region,
      subjectPrefix: 'StemeDB',
    });
    expect(create).toMatchObject({
      service: 'amp',
      action: 'createAlertManagerDefinition',
      parameters: { workspaceId: WORKSPACE, data: expected },
      physicalResourceId: { id: WORKSPACE },
    });
    expect(update).toMatchObject({
      service: 'amp',
      action: 'putAlertManagerDefinition',
      parameters: { workspaceId: WORKSPACE, data: expected },
      physicalResourceId: { id: WORKSPACE },
    });
    expect(del).toMatchObject({
      service: 'amp',
      action: 'deleteAlertManagerDefinition',
      parameters: { workspaceId: 'PHYSICAL:RESOURCEID:' },
    });
    expect(new RegExp(del.ignoreErrorCodesMatching).test('ResourceNotFoundException')).toBe(true);
    expect(new RegExp(del.ignoreErrorCodesMatching).test('ThrottlingException')).toBe(false);
    expect(new RegExp(del.ignoreErrorCodesMatching).test('InternalServerException')).toBe(false);
  });

  it("gives the definition's calls exactly this workspace's ARN", () => {
    const policies = t
      .resources('AWS::IAM::Policy')
      .flatMap((p) => statements(p.properties.PolicyDocument))
      .filter((s) => [s.Action].flat().some((a) => String(a).startsWith('aps:')));
    expect(policies).toEqual([
      {
        Sid: 'ThisWorkspacesAlertManagerDefinition',
        Effect: 'Allow',
        Action: [
          'aps:CreateAlertManagerDefinition',
          'aps:DeleteAlertManagerDefinition',
          'aps:PutAlertManagerDefinition',
        ],
        Resource: WORKSPACE_ARN,
      },
    ]);
  });

  it('creates no self-managed publisher policy unless asked', () => {
    expect(t.managedPolicies().map((p) => p.name)).not.toContain('StemeDB-prometheus-alertmanager-publish');
  });
});

describe('with a self-managed Alertmanager and no workspace', () => {
  let t: ResolvedTemplate;
  let outputs: Record<string, { Value: unknown; Export?: { Name: string } }>;
  beforeAll(() => {
    const json = synthStack({ selfManagedAlertmanager: true }).template.toJSON();
    t = new ResolvedTemplate(json, TARGET);
    outputs = (json as { Outputs: typeof outputs }).Outputs;
  });

  it('outputs the alert topic ARN (the sns_configs topic_arn), exported', () => {
    const topic = t
      .resources('AWS::SNS::Topic')
      .find((x) => x.properties.TopicName === 'StemeDB-prometheus-alerts');
    expect(outputs.PrometheusAlertTopicArn).toMatchObject({
      Value: { Ref: topic?.logicalId },
      Export: { Name: 'StemeDB-PrometheusAlertTopicArn' },
    });
  });

  it('creates the topic and the subscription, and nothing for AMP', () => {
    expect(t.resources('AWS::SNS::Subscription')).toHaveLength(1);
    expect(t.resources('Custom::AWS')).toHaveLength(0);
    expect(t.resources('AWS::APS::RuleGroupsNamespace')).toHaveLength(0);
    const all = JSON.stringify(t.resourcePolicies().map((p) => p.document));
    expect(all).not.toContain('aps.amazonaws.com');
  });

  it('creates the publisher policy: publish to the topic, its key only through SNS', () => {
    const policy = t.managedPolicies().find((p) => p.name === 'StemeDB-prometheus-alertmanager-publish');
    const key = t.resources('AWS::KMS::Key')[0];
    expect(statements(policy?.document)).toEqual([
      { Sid: 'PublishPrometheusAlerts', Effect: 'Allow', Action: 'sns:Publish', Resource: TOPIC_ARN },
      {
        Sid: 'UseTheTopicKeyThroughSns',
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: key?.attributes.Arn,
        Condition: { StringEquals: { 'kms:ViaService': 'sns.eu-west-1.amazonaws.com' } },
      },
    ]);
  });
});

describe('without Prometheus alerting', () => {
  it('creates no alert topic and does not tell the router one', () => {
    const t = new ResolvedTemplate(synthStack({}).template.toJSON(), TARGET);
    expect(t.resources('AWS::SNS::Topic').map((x) => x.properties.TopicName)).toEqual([
      'StemeDB-disk-notifications',
    ]);
    const router = t
      .resources('AWS::Lambda::Function')
      .find((f) => f.properties.FunctionName === 'StemeDB-alarm-router');
    expect(router?.properties.Environment).toMatchObject({ Variables: { PREFIX: 'StemeDB' } });
    expect(router?.properties.Environment).not.toHaveProperty('Variables.PROMETHEUS_TOPIC_ARN');
    expect(Object.keys((synthStack({}).template.toJSON() as { Outputs: object }).Outputs)).not.toContain(
      'PrometheusAlertTopicArn',
    );
  });
});

describe('PrometheusAlerting props', () => {
  function build(props: Partial<PrometheusAlertingProps>, importedKey = false): void {
    const stack = new Stack(new App(), 'Probe', { env: { account: '111122223333', region: 'eu-west-1' } });
    const router = new lambda.Function(stack, 'Router', {
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('exports.handler = async () => ({})'),
    });
    const encryptionKey = importedKey
      ? kms.Key.fromKeyArn(
          stack,
          'Imported',
          'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
        )
      : new kms.Key(stack, 'Key');
    new PrometheusAlerting(stack, 'Alerting', { router, encryptionKey, ...props });
  }

  it.each([
    [
      { workspaceId: 'my-workspace' },
      /workspaceId is "my-workspace"; expected an Amazon Managed Service for Prometheus workspace ID/,
    ],
    [{ workspaceId: WORKSPACE, prefix: 'Steme-DB' }, /prefix is "Steme-DB"; expected a letter/],
    [{}, /neither workspaceId nor selfManagedPublisher is set/],
    [{ selfManagedPublisher: false }, /neither workspaceId nor selfManagedPublisher is set/],
  ])('refuses %j, naming the prop', (props, message) => {
    expect(() => build(props)).toThrow(message);
  });

  it('refuses a key whose policy the stack cannot change (AMP could not use it)', () => {
    expect(() => build({ workspaceId: WORKSPACE }, true)).toThrow(
      /encryptionKey has no key policy this stack can change/,
    );
    // A self-managed publisher needs no key policy statement: an imported key is fine there.
    expect(() => build({ selfManagedPublisher: true }, true)).not.toThrow();
  });
});
