import * as iam from 'aws-cdk-lib/aws-iam';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import { acknowledgeWildcard } from './nag-acknowledgements';
import { type NodeArchiveAccess, walArchiveNodeStatements, walArchivePrefix } from './wal-archive-bucket';

export interface NodeInstancePolicyProps {
  /** Name prefix. @default 'StemeDB' */
  readonly prefix?: string;
  readonly nodeName: string;
  /** The WAL archive the node writes to (its own prefix only, no delete): `WalArchiveBucket.nodeAccess()` or imported. */
  readonly archive: NodeArchiveAccess;
  /** The node's own CloudWatch agent configuration parameter. */
  readonly agentConfig: ssm.IStringParameter;
  /** The node's own metrics namespace: the only one it may put metrics in. */
  readonly metricsNamespace: string;
}

/**
 * What a node's instance role needs for this automation, as one managed policy per node that the
 * platform team attaches to the instance role (`<prefix>-node-<name>`): publish the agent's disk
 * metrics to its own namespace only, read its agent configuration, and put and read (never
 * delete) its own WAL archive.
 * SSM itself needs `AmazonSSMManagedInstanceCore` on the same role.
 */
export class NodeInstancePolicy extends Construct {
  public readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: NodeInstancePolicyProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      managedPolicyName: `${prefix}-node-${props.nodeName}`,
      description: `${prefix} node ${props.nodeName}: disk metrics, agent configuration, own WAL archive (no delete)`,
      statements: [
        new iam.PolicyStatement({
          sid: 'PublishAgentDiskMetrics',
          actions: ['cloudwatch:PutMetricData'],
          // PutMetricData has no resource-level permissions and IAM no condition key for metric
          // dimensions: the node's own namespace (its alarms read only that) scopes it.
          resources: ['*'],
          conditions: { StringEquals: { 'cloudwatch:namespace': props.metricsNamespace } },
        }),
        new iam.PolicyStatement({
          sid: 'ReadAgentConfiguration',
          actions: ['ssm:GetParameter'],
          resources: [props.agentConfig.parameterArn],
        }),
        ...walArchiveNodeStatements(props.archive, props.nodeName),
      ],
    });
    acknowledgeWildcard(
      this.policy,
      'Resource::*',
      `cloudwatch:PutMetricData has no resource-level permissions; the statement is limited by condition to the node's own namespace ${props.metricsNamespace}, the only one its alarms read.`,
    );
    acknowledgeWildcard(
      this.policy,
      `Resource::${props.archive.nagBucketArn}/${walArchivePrefix(props.nodeName)}*`,
      "WAL segment keys are only known at archive time; the wildcard is the node's own prefix, and no delete action is granted.",
    );
  }
}
