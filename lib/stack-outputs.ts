import { CfnOutput, Stack } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX, PREFIX_PATTERN } from '../contracts/deployment';
import type { AutomationDocument } from './automation-document';
import type { CommandDocument } from './command-document';

export interface StackOutputsProps {
  /** Name prefix of the deployment (config `prefix`): export names are `<prefix>-<Output>`. @default 'StemeDB' */
  readonly prefix?: string;
  /** The dashboard: its name and console URL. */
  readonly dashboard: cloudwatch.Dashboard;
  /** Where alarms and automations report. */
  readonly topic: sns.ITopic;
  /** The WAL archive bucket. */
  readonly archiveBucket: s3.IBucket;
  /** The role the Automation documents run as. */
  readonly automationRole: iam.IRole;
  /** The Automation documents, one output `AutomationDocument<Name>` each. */
  readonly automationDocuments: readonly AutomationDocument[];
  /** The Command documents, one output `CommandDocument<Name>` each. @default none */
  readonly commandDocuments?: readonly CommandDocument[];
  /** The kill switch `/<prefix>/automation-mode`. */
  readonly modeParameter: ssm.IStringParameter;
  /** The operator managed policy teams attach. */
  readonly operatorPolicy: iam.IManagedPolicy;
  /**
   * The topic Alertmanager publishes Prometheus alerts to (AMP's, or a self-managed one's
   * `sns_configs`), output `PrometheusAlertTopicArn`. @default none (no Prometheus alerting)
   */
  readonly prometheusAlertTopic?: sns.ITopic;
}

/** CloudFormation's limit of outputs per template. */
export const STACK_OUTPUT_LIMIT = 200;

/**
 * The stack's face: what a platform team and an operator need after `cdk deploy`, as stack
 * outputs with stable logical IDs (the names `aws cloudformation describe-stacks` shows) and, for
 * the ARNs and names another stack may import, stable export names `<prefix>-<Output>`. Document
 * names get one output each (`AutomationDocument<Name>`, `CommandDocument<Name>`): some two dozen
 * of CloudFormation's 200 outputs per stack, checked here.
 *
 * The dashboard URL is the AWS (commercial partition) console's:
 * `https://<region>.console.aws.amazon.com/cloudwatch/home?region=<region>#dashboards:name=<name>`.
 */
export class StackOutputs extends Construct {
  /** Every output, by its logical ID. */
  public readonly outputs: ReadonlyMap<string, CfnOutput>;

  constructor(scope: Construct, id: string, props: StackOutputsProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    if (!PREFIX_PATTERN.test(prefix))
      throw new Error(`StackOutputs prefix ${JSON.stringify(prefix)} is invalid: expected ${PREFIX_PATTERN}`);
    if (props.automationDocuments.length === 0)
      throw new Error(
        'StackOutputs automationDocuments is empty: expected the Automation documents of this stack',
      );
    // Every document's output name first: a document of another deployment changes nothing.
    const automationOutputs = props.automationDocuments.map(
      (d) => [sectionName(d.documentName, `${prefix}-`, 'automationDocuments'), d] as const,
    );
    const commandOutputs = (props.commandDocuments ?? []).map(
      (d) => [sectionName(d.documentName, `${prefix}-Host-`, 'commandDocuments'), d] as const,
    );
    const region = Stack.of(this).region;
    const outputs = new Map<string, CfnOutput>();
    const add = (logicalId: string, value: string, description: string, exported = false): void => {
      if (outputs.has(logicalId))
        throw new Error(`StackOutputs would define output ${logicalId} twice (two documents of one name?)`);
      const output = new CfnOutput(this, logicalId, {
        value,
        description,
        exportName: exported ? `${prefix}-${logicalId}` : undefined,
      });
      // The logical ID is the output's name in the stack: stable, without CDK's path hash.
      output.overrideLogicalId(logicalId);
      outputs.set(logicalId, output);
    };

    add(
      'DashboardUrl',
      `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards:name=${props.dashboard.dashboardName}`,
      'The CloudWatch dashboard: free space, inodes and alarm states per node, router decisions, expansions, archive verification',
    );
    add('DashboardName', props.dashboard.dashboardName, 'The CloudWatch dashboard name');
    add(
      'NotificationTopicArn',
      props.topic.topicArn,
      'SNS topic of every alarm and automation notification (KMS-encrypted; subscribe on-call here)',
      true,
    );
    add(
      'WalArchiveBucketName',
      props.archiveBucket.bucketName,
      'S3 bucket holding archived WAL segments under wal/<node>/ (create-only, versioned, SSE-KMS)',
      true,
    );
    add(
      'AutomationRoleArn',
      props.automationRole.roleArn,
      'Role the Automation documents run as (AutomationAssumeRole); operators pass it to SSM only',
      true,
    );
    add(
      'AutomationModeParameterName',
      props.modeParameter.parameterName,
      'Kill switch: act (alarms start documents), observe (notify what would run) or off',
      true,
    );
    add(
      'OperatorPolicyArn',
      props.operatorPolicy.managedPolicyArn,
      "Managed policy to attach to operators' roles: start, stop and follow this stack's Automations, flip the kill switch, read results",
      true,
    );
    if (props.prometheusAlertTopic !== undefined)
      add(
        'PrometheusAlertTopicArn',
        props.prometheusAlertTopic.topicArn,
        "SNS topic Alertmanager publishes Prometheus alerts to (a self-managed Alertmanager's sns_configs topic_arn); the alarm router reads it",
        true,
      );
    for (const [name, d] of automationOutputs)
      add(`AutomationDocument${name}`, d.resource.ref, `Automation document (runbook section) ${name}`);
    for (const [name, d] of commandOutputs)
      add(`CommandDocument${name}`, d.resource.ref, `Command document (host script) ${name}`);
    if (outputs.size > STACK_OUTPUT_LIMIT)
      throw new Error(
        `StackOutputs would create ${outputs.size} outputs; CloudFormation allows ${STACK_OUTPUT_LIMIT} per stack: list the documents in fewer outputs (automationDocuments, commandDocuments)`,
      );
    this.outputs = outputs;
  }
}

/** `<prefix>-ExpandVolume` → `ExpandVolume`; throws naming the prop for a document of another deployment. */
function sectionName(documentName: string, start: string, prop: string): string {
  const name = documentName.slice(start.length);
  if (!documentName.startsWith(start) || !/^[A-Z][A-Za-z0-9]*$/.test(name))
    throw new Error(`StackOutputs ${prop} names ${documentName}; expected ${start}<Name>`);
  return name;
}
