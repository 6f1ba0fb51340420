import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';

/** CloudWatch agent namespace and dimensions the alarms, dashboard and Lambdas read. */
export const AGENT_NAMESPACE = 'CWAgent';
export const AGENT_METRICS = {
  free: 'disk_free',
  total: 'disk_total',
  used: 'disk_used',
  usedPercent: 'disk_used_percent',
  inodesFree: 'disk_inodes_free',
  inodesTotal: 'disk_inodes_total',
} as const;

/** SSM associations accept at most 50 instance IDs per target. */
const MAX_INSTANCES_PER_ASSOCIATION = 50;

export interface DiskMetricsAgentProps {
  /** Mount point whose disk metrics are collected. */
  readonly dataMount: string;
  /** Instances to configure. @default none (the parameter is still created) */
  readonly instanceIds?: readonly string[];
  /** Name prefix of the parameter and associations. @default 'StemeDB' */
  readonly prefix?: string;
  /** Collection interval in seconds. @default 60 */
  readonly intervalSeconds?: number;
}

/** The agent configuration: disk used/free bytes and inodes of the data mount, every minute. */
export function cloudWatchAgentConfig(dataMount: string, intervalSeconds: number): object {
  return {
    agent: { metrics_collection_interval: intervalSeconds, omit_hostname: true },
    metrics: {
      namespace: AGENT_NAMESPACE,
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
 * The CloudWatch agent configuration for the data mount, stored in an SSM parameter and applied
 * to the nodes by SSM associations (install the agent, then configure it), so the metrics the
 * alarms read exist right after deploy.
 */
export class DiskMetricsAgent extends Construct {
  public readonly parameter: ssm.StringParameter;

  constructor(scope: Construct, id: string, props: DiskMetricsAgentProps) {
    super(scope, id);
    const prefix = props.prefix ?? 'StemeDB';
    const interval = props.intervalSeconds ?? 60;
    if (![10, 30, 60].includes(interval)) {
      throw new Error(`DiskMetricsAgent intervalSeconds is ${interval}; expected 10, 30 or 60`);
    }
    if (!props.dataMount.startsWith('/')) {
      throw new Error(
        `DiskMetricsAgent dataMount is ${JSON.stringify(props.dataMount)}; expected an absolute path`,
      );
    }
    this.parameter = new ssm.StringParameter(this, 'Config', {
      parameterName: `AmazonCloudWatch-${prefix}-disk`,
      description: `CloudWatch agent configuration: disk metrics of ${props.dataMount}`,
      stringValue: JSON.stringify(cloudWatchAgentConfig(props.dataMount, interval)),
    });

    const ids = props.instanceIds ?? [];
    for (let i = 0; i < ids.length; i += MAX_INSTANCES_PER_ASSOCIATION) {
      const chunk = ids.slice(i, i + MAX_INSTANCES_PER_ASSOCIATION);
      const n = i / MAX_INSTANCES_PER_ASSOCIATION;
      const targets = [{ key: 'InstanceIds', values: [...chunk] }];
      const install = new ssm.CfnAssociation(this, `InstallAgent${n}`, {
        name: 'AWS-ConfigureAWSPackage',
        associationName: `${prefix}-install-cloudwatch-agent-${n}`,
        parameters: { action: ['Install'], name: ['AmazonCloudWatchAgent'] },
        targets,
        scheduleExpression: 'rate(30 days)',
      });
      const configure = new ssm.CfnAssociation(this, `ConfigureAgent${n}`, {
        name: 'AmazonCloudWatch-ManageAgent',
        associationName: `${prefix}-configure-cloudwatch-agent-${n}`,
        parameters: {
          action: ['configure'],
          mode: ['ec2'],
          optionalConfigurationSource: ['ssm'],
          optionalConfigurationLocation: [this.parameter.parameterName],
          optionalRestart: ['yes'],
        },
        targets,
      });
      configure.node.addDependency(install);
    }
  }
}
