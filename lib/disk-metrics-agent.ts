import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';

/** Where every CloudWatch agent publishes by default; no node of this stack publishes there. */
export const DEFAULT_AGENT_NAMESPACE = 'CWAgent';
export const AGENT_METRICS = {
  free: 'disk_free',
  total: 'disk_total',
  used: 'disk_used',
  usedPercent: 'disk_used_percent',
  inodesFree: 'disk_inodes_free',
  inodesTotal: 'disk_inodes_total',
} as const;

/**
 * The CloudWatch namespace one node's agent publishes its disk metrics to, and the only one its
 * instance policy may put metrics in: `CWAgent/<prefix>/<instance ID>`. IAM has no condition key
 * for metric dimensions (PutMetricData takes only `cloudwatch:namespace`), so a namespace of its
 * own is what keeps a node from writing, or hiding, another node's disk figures. The instance ID
 * (not the node name) so that every reader derives it from what it already has: the alarms from
 * their dimension, ExpandVolume's ReadDiskUsage from its `InstanceId` parameter.
 */
export function agentNamespace(prefix: string, instanceId: string): string {
  return `${DEFAULT_AGENT_NAMESPACE}/${prefix}/${instanceId}`;
}

/** `AmazonCloudWatch-<prefix>-disk-<node>`: the node's agent configuration parameter. */
export function agentConfigParameterName(prefix: string, nodeName: string): string {
  return `AmazonCloudWatch-${prefix}-disk-${nodeName}`;
}

/** SSM associations accept at most 50 instance IDs per target. */
const MAX_INSTANCES_PER_ASSOCIATION = 50;
const INTERVALS = [10, 30, 60];

export interface DiskMetricsAgentProps {
  /** Instances to install the agent on. @default none (no association) */
  readonly instanceIds?: readonly string[];
  /** Name prefix of the associations. @default 'StemeDB' */
  readonly prefix?: string;
}

/** The agent configuration: disk used/free bytes and inodes of the data mount, into `namespace`. */
export function cloudWatchAgentConfig(dataMount: string, intervalSeconds: number, namespace: string): object {
  return {
    agent: { metrics_collection_interval: intervalSeconds, omit_hostname: true },
    metrics: {
      namespace,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the agent's own placeholder, filled on the host.
      append_dimensions: { InstanceId: '${aws:InstanceId}' },
      // The alarms use exactly {InstanceId, path}: fstype and device would differ between nodes.
      aggregation_dimensions: [['InstanceId', 'path']],
      metrics_collected: {
        disk: {
          resources: [dataMount],
          measurement: ['free', 'total', 'used', 'used_percent', 'inodes_free', 'inodes_total'],
          drop_device: true,
          metrics_collection_interval: intervalSeconds,
        },
      },
    },
  };
}

/**
 * Installs the CloudWatch agent on the nodes (shared: one SSM association per 50 instances). Each
 * node's configuration is its own ({@link NodeDiskMetricsAgent}), because each node publishes to
 * a namespace of its own.
 */
export class DiskMetricsAgent extends Construct {
  constructor(scope: Construct, id: string, props: DiskMetricsAgentProps = {}) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const ids = props.instanceIds ?? [];
    for (let i = 0; i < ids.length; i += MAX_INSTANCES_PER_ASSOCIATION) {
      const chunk = ids.slice(i, i + MAX_INSTANCES_PER_ASSOCIATION);
      const n = i / MAX_INSTANCES_PER_ASSOCIATION;
      new ssm.CfnAssociation(this, `InstallAgent${n}`, {
        name: 'AWS-ConfigureAWSPackage',
        associationName: `${prefix}-install-cloudwatch-agent-${n}`,
        parameters: { action: ['Install'], name: ['AmazonCloudWatchAgent'] },
        targets: [{ key: 'InstanceIds', values: [...chunk] }],
        scheduleExpression: 'rate(30 days)',
      });
    }
  }
}

export interface NodeDiskMetricsAgentProps {
  /** StemeDB node name: part of the parameter and association names. */
  readonly nodeName: string;
  /** The node's instance: the association's only target, and part of the namespace. */
  readonly instanceId: string;
  /** Mount point whose disk metrics are collected. */
  readonly dataMount: string;
  /** Name prefix of the parameter, association and namespace. @default 'StemeDB' */
  readonly prefix?: string;
  /** Collection interval in seconds. @default 60 */
  readonly intervalSeconds?: number;
  /** What installs the agent on the instance; the configuration is applied after it. @default none */
  readonly installedBy?: Construct;
}

/**
 * One node's CloudWatch agent configuration: the data mount's disk metrics, published to the
 * node's own namespace ({@link agentNamespace}), stored in an SSM parameter and applied to that
 * node's instance only by an SSM association, so the metrics the alarms read exist right after
 * deploy. Two resources per node.
 */
export class NodeDiskMetricsAgent extends Construct {
  public readonly parameter: ssm.StringParameter;
  /** The namespace the node's agent publishes to and its alarms read. */
  public readonly namespace: string;

  constructor(scope: Construct, id: string, props: NodeDiskMetricsAgentProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const interval = props.intervalSeconds ?? 60;
    if (!INTERVALS.includes(interval)) {
      throw new Error(`NodeDiskMetricsAgent intervalSeconds is ${interval}; expected 10, 30 or 60`);
    }
    if (!props.dataMount.startsWith('/')) {
      throw new Error(
        `NodeDiskMetricsAgent dataMount is ${JSON.stringify(props.dataMount)}; expected an absolute path`,
      );
    }
    this.namespace = agentNamespace(prefix, props.instanceId);
    this.parameter = new ssm.StringParameter(this, 'Config', {
      parameterName: agentConfigParameterName(prefix, props.nodeName),
      description: `CloudWatch agent configuration of node ${props.nodeName}: disk metrics of ${props.dataMount} into ${this.namespace}`,
      stringValue: JSON.stringify(cloudWatchAgentConfig(props.dataMount, interval, this.namespace)),
    });
    const configure = new ssm.CfnAssociation(this, 'ConfigureAgent', {
      name: 'AmazonCloudWatch-ManageAgent',
      associationName: `${prefix}-configure-cloudwatch-agent-${props.nodeName}`,
      parameters: {
        action: ['configure'],
        mode: ['ec2'],
        optionalConfigurationSource: ['ssm'],
        optionalConfigurationLocation: [this.parameter.parameterName],
        optionalRestart: ['yes'],
      },
      targets: [{ key: 'InstanceIds', values: [props.instanceId] }],
    });
    if (props.installedBy !== undefined) configure.node.addDependency(props.installedBy);
  }
}
