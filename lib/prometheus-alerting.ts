import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX, PREFIX_PATTERN } from '../contracts/deployment';
import { renderAmpAlertManagerDefinition } from './alertmanager-config';
import { acknowledgeCustomResourceProvider } from './nag-acknowledgements';
import { topicPublishStatements } from './topic-publish-grant';

/** An Amazon Managed Service for Prometheus workspace ID (lib/config.ts checks the same form). */
const WORKSPACE_ID = /^ws-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface PrometheusAlertingProps {
  /** The alarm router function: subscribed to the topic, told its ARN (`PROMETHEUS_TOPIC_ARN`). */
  readonly router: lambda.Function;
  /**
   * Where SNS puts a notification it could not deliver to the router (after its retries), so a
   * Prometheus alert is never dropped silently: the router's dead-letter queue, whose depth an
   * alarm watches. @default none (SNS drops it after its retries)
   */
  readonly deadLetterQueue?: sqs.IQueue;
  /** The stack's key (a key of this stack: its policy gets the AMP statement). The topic is encrypted with it. */
  readonly encryptionKey: kms.IKey;
  /**
   * The existing AMP workspace whose Alertmanager publishes to the topic: the topic policy and the
   * key policy let `aps.amazonaws.com` publish for this workspace only, and the stack owns the
   * workspace's alert manager definition. @default none (no AMP)
   */
  readonly workspaceId?: string;
  /**
   * Create the managed policy `<prefix>-prometheus-alertmanager-publish` for a self-managed
   * Alertmanager's role (publish to the topic, use its key through SNS). @default false
   */
  readonly selfManagedPublisher?: boolean;
  /** Name prefix of the topic and the policy. @default 'StemeDB' */
  readonly prefix?: string;
}

/**
 * Prometheus alerts that start automation: the topic Alertmanager publishes to (KMS-encrypted with
 * the stack key, TLS only), the alarm router subscribed to it, and the publishers: the AMP
 * workspace's Alertmanager (topic and key policy, and its alert manager definition, rendered by
 * lib/alertmanager-config.ts) and/or a self-managed Alertmanager (a managed policy to attach).
 *
 * CloudFormation has no resource for the alert manager definition of a workspace it did not create
 * (`AWS::APS::Workspace.AlertManagerDefinition` exists only on a workspace the stack creates), so
 * a custom resource calls the AMP API: CreateAlertManagerDefinition, which refuses a workspace that
 * already has a definition (ConflictException: the deploy fails and the definition someone else
 * wrote stays), PutAlertManagerDefinition on update, DeleteAlertManagerDefinition on delete. Its
 * physical ID is the workspace ID and the delete names the workspace by that ID: a create that
 * failed has the provider's log stream as its ID, so the rollback's delete finds no workspace and
 * cannot delete a definition the stack never wrote.
 */
export class PrometheusAlerting extends Construct {
  /** The topic Alertmanager publishes to; only the router subscribes. */
  public readonly topic: sns.Topic;
  /** ARN of the workspace, when `workspaceId` is given. */
  public readonly workspaceArn: string | undefined;
  /** The policy for a self-managed Alertmanager, when `selfManagedPublisher` is true. */
  public readonly publisherPolicy: iam.ManagedPolicy | undefined;
  /** The alert manager definition text uploaded to the workspace, when `workspaceId` is given. */
  public readonly alertManagerDefinition: string | undefined;

  constructor(scope: Construct, id: string, props: PrometheusAlertingProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const selfManaged = props.selfManagedPublisher ?? false;
    if (!PREFIX_PATTERN.test(prefix)) {
      throw new Error(
        `PrometheusAlerting: prefix is ${JSON.stringify(prefix)}; expected a letter and up to 19 letters or digits`,
      );
    }
    if (props.workspaceId !== undefined && !WORKSPACE_ID.test(props.workspaceId)) {
      throw new Error(
        `PrometheusAlerting: workspaceId is ${JSON.stringify(props.workspaceId)}; expected an Amazon Managed Service for Prometheus workspace ID such as ws-12345678-abcd-ef01-2345-6789abcdef01 (lower-case hex)`,
      );
    }
    if (props.workspaceId === undefined && !selfManaged) {
      throw new Error(
        'PrometheusAlerting: neither workspaceId nor selfManagedPublisher is set; give the AMP workspace, or selfManagedPublisher: true for a self-managed Alertmanager (or build no PrometheusAlerting)',
      );
    }
    const stack = Stack.of(this);

    this.topic = new sns.Topic(this, 'Topic', {
      topicName: `${prefix}-prometheus-alerts`,
      displayName: `${prefix} Prometheus alerts for the disk alarm router`,
      masterKey: props.encryptionKey,
      enforceSSL: true,
    });
    // SNS invokes the router (a Lambda permission for this topic only); the router acts only on
    // notifications of the topic named in PROMETHEUS_TOPIC_ARN.
    this.topic.addSubscription(
      new subs.LambdaSubscription(props.router, { deadLetterQueue: props.deadLetterQueue }),
    );
    props.router.addEnvironment('PROMETHEUS_TOPIC_ARN', this.topic.topicArn);

    if (props.workspaceId !== undefined) {
      const workspaceArn = stack.formatArn({
        service: 'aps',
        resource: 'workspace',
        resourceName: props.workspaceId,
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      });
      this.workspaceArn = workspaceArn;
      this.allowWorkspaceToPublish(props.encryptionKey, workspaceArn);
      this.alertManagerDefinition = renderAmpAlertManagerDefinition({
        topicArn: this.topic.topicArn,
        region: stack.region,
        subjectPrefix: prefix,
      });
      this.putAlertManagerDefinition(props.workspaceId, workspaceArn, this.alertManagerDefinition);
    }

    if (selfManaged) {
      this.publisherPolicy = new iam.ManagedPolicy(this, 'SelfManagedPublisher', {
        managedPolicyName: `${prefix}-prometheus-alertmanager-publish`,
        description: `${prefix}: attach to the role of a self-managed Alertmanager that sends Prometheus disk alerts to the alarm router`,
        // The topic is encrypted: SNS uses the key with the publisher's credentials.
        statements: topicPublishStatements(this.topic, {
          publish: 'PublishPrometheusAlerts',
          key: 'UseTheTopicKeyThroughSns',
        }),
      });
    }
  }

  /**
   * AMP's Alertmanager publishes as `aps.amazonaws.com`: the topic policy allows it for this
   * account's workspace only (aws:SourceArn, aws:SourceAccount, against the confused deputy: AMP
   * user guide, "Giving Amazon Managed Service for Prometheus permission to send alert messages to
   * your Amazon SNS topic"), and the key policy lets it use the topic key, for this account.
   */
  private allowWorkspaceToPublish(key: kms.IKey, workspaceArn: string): void {
    const account = Stack.of(this).account;
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowThisWorkspacesAlertmanager',
        principals: [new iam.ServicePrincipal('aps.amazonaws.com')],
        actions: ['sns:Publish', 'sns:GetTopicAttributes'],
        resources: [this.topic.topicArn],
        conditions: {
          ArnEquals: { 'aws:SourceArn': workspaceArn },
          StringEquals: { 'aws:SourceAccount': account },
        },
      }),
    );
    // The AMP guide's key statement for an encrypted topic; conditioned on the account like the
    // CloudWatch alarms' statement (lib/stemedb-key.ts). The workspace condition is on the topic,
    // the only resource this key lets AMP write to.
    const added = key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowPrometheusAlertmanagerToUseTheTopicKey',
        principals: [new iam.ServicePrincipal('aps.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': account } },
      }),
    );
    if (!added.statementAdded) {
      throw new Error(
        'PrometheusAlerting: encryptionKey has no key policy this stack can change (an imported key?); expected the stack key, whose policy must let aps.amazonaws.com use it for the encrypted topic',
      );
    }
  }

  private putAlertManagerDefinition(workspaceId: string, workspaceArn: string, data: string): void {
    const write = (action: 'createAlertManagerDefinition' | 'putAlertManagerDefinition'): cr.AwsSdkCall => ({
      service: 'amp',
      action,
      // A string for the blob `data`: the SDK sends its UTF-8 bytes, base64-encoded as the API wants.
      parameters: { workspaceId, data },
      physicalResourceId: cr.PhysicalResourceId.of(workspaceId),
    });
    // The construct ID names the workspace: another workspace is a new resource (a create there,
    // then a delete of this one's definition), never a PUT into a workspace without a definition.
    new cr.AwsCustomResource(this, `AlertManagerDefinition-${workspaceId}`, {
      onCreate: write('createAlertManagerDefinition'),
      onUpdate: write('putAlertManagerDefinition'),
      onDelete: {
        service: 'amp',
        action: 'deleteAlertManagerDefinition',
        parameters: { workspaceId: new cr.PhysicalResourceIdReference() },
        // Already gone (ResourceNotFound), or the rollback of a create that failed: its physical ID
        // is the provider's log stream, which names no workspace (AMP: ResourceNotFound or
        // Validation; IAM: AccessDenied, the policy names this workspace only). A delete of this
        // workspace's definition is allowed (test/permissions.test.ts), so AccessDenied comes only
        // from such an ID.
        ignoreErrorCodesMatching: '^(ResourceNotFoundException|ValidationException|AccessDeniedException)$',
      },
      installLatestAwsSdk: false,
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({
          sid: 'ThisWorkspacesAlertManagerDefinition',
          actions: [
            'aps:CreateAlertManagerDefinition',
            'aps:PutAlertManagerDefinition',
            'aps:DeleteAlertManagerDefinition',
          ],
          resources: [workspaceArn],
        }),
      ]),
    });
    acknowledgeCustomResourceProvider(Stack.of(this));
  }
}
