import { Annotations, Stack, type StackProps } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../contracts/metrics';
import type { StemeDbConfig } from './config';
import { DiskDashboard } from './disk-dashboard';
import { DiskMetricsAgent } from './disk-metrics-agent';
import { DiskRemediation } from './disk-remediation';
import { FleetDiskDashboard } from './fleet-dashboard';
import { nodesByShard, SHARED_STACK_SHARD } from './fleet-shards';
import { NotificationTopic } from './notification-topic';
import { PrometheusRuleGroupsNamespace } from './prometheus-rule-groups-namespace';
import { renderPrometheusRules } from './prometheus-rules';
import { SharedStackExports } from './shared-stack-exports';
import { DataVolumeSnapshotPolicy } from './snapshot-policy';
import { StemeDbKey } from './stemedb-key';
import { StemeDbNode } from './stemedb-node';
import { WalArchiveBucket } from './wal-archive-bucket';

export interface StemeDbDiskStackProps extends StackProps {
  /** The validated configuration (see lib/config.ts). */
  readonly config: StemeDbConfig;
}

/**
 * The StemeDB disk-full automation's shared stack `<prefix>-Disk`: shared resources (key, topic,
 * agent installation, snapshots, documents, Lambdas, router, fleet dashboard) and one
 * {@link StemeDbNode} per node of shard 0 (lib/fleet-shards.ts: every node while `fleet.shards`
 * is 0, today's single-stack layout). Nodes of shards 1..n live in node stacks
 * ({@link StemeDbNodeStack}) that take the public members below as props.
 * The stack only composes constructs.
 */
export class StemeDbDiskStack extends Stack {
  /** The nodes of shard 0, the ones this stack holds. */
  public readonly nodes: readonly StemeDbNode[];
  public readonly key: kms.IKey;
  public readonly topic: sns.ITopic;
  public readonly archive: WalArchiveBucket;
  /** Installs the CloudWatch agent on every node of the fleet. */
  public readonly agent: DiskMetricsAgent;

  constructor(scope: Construct, id: string, props: StemeDbDiskStackProps) {
    super(scope, id, props);
    const { config } = props;
    const { prefix } = config;

    const sharedNodes = nodesByShard(config.nodes, config.fleet.shards).get(SHARED_STACK_SHARD) ?? [];
    const key = new StemeDbKey(this, 'Key', { prefix }).key;
    const topic = new NotificationTopic(this, 'Notifications', {
      encryptionKey: key,
      emails: config.notifyEmails,
      prefix,
    }).topic;
    const agent = new DiskMetricsAgent(this, 'DiskMetricsAgent', {
      instanceIds: config.nodes.map((n) => n.instanceId),
      prefix,
    });
    new DataVolumeSnapshotPolicy(this, 'Snapshots', {
      retainCount: config.snapshots.retainCount,
      timeUtc: config.snapshots.timeUtc,
      prefix,
    });

    const archive = new WalArchiveBucket(this, 'WalArchive', {
      encryptionKey: key,
      transitionAfterDays: config.archive.transitionAfterDays,
      noncurrentExpireDays: config.archive.noncurrentExpireDays,
      objectLockDays: config.archive.objectLockDays,
    });

    this.key = key;
    this.topic = topic;
    this.archive = archive;
    this.agent = agent;

    this.nodes = sharedNodes.map(
      (node) =>
        new StemeDbNode(this, `Node-${node.name}`, {
          node,
          prefix,
          dataMount: config.dataMount,
          thresholds: config.thresholds,
          encryptionKey: key,
          topic,
          instanceAccess: { archive: archive.nodeAccess() },
          agentInstalledBy: agent,
        }),
    );

    new DiskRemediation(this, 'Remediation', { config, topic, archive });

    new DiskDashboard(this, 'Dashboard', {
      prefix,
      automationNamespace: METRICS_NAMESPACE,
      thresholds: config.thresholds,
      nodes: this.nodes.map((n) => ({ nodeName: n.nodeName, alarms: n.alarms })),
    });
    new SharedStackExports(this, 'Exports', { prefix, key, topic, archiveBucket: archive.bucket });
    new FleetDiskDashboard(this, 'FleetDashboard', {
      prefix,
      dataMount: config.dataMount,
      thresholds: config.thresholds,
      shardDashboards: Array.from({ length: config.fleet.shards }, (_, i) => `${prefix}-disk-shard-${i + 1}`),
    });

    if (config.prometheusWorkspaceId !== undefined) {
      new PrometheusRuleGroupsNamespace(this, 'PrometheusRules', {
        workspaceId: config.prometheusWorkspaceId,
        rulesYaml: renderPrometheusRules(config.thresholds, { dataMount: config.dataMount }),
      });
    }

    if (config.nodes.length === 0) {
      Annotations.of(this).addWarningV2(
        'stemedb:no-nodes',
        'No StemeDB nodes are configured: only the shared resources are synthesized. Add nodes under "stemedb.nodes" in cdk.json, or pass a JSON file with -c stemedbConfig=path/to/config.json (see README "Adding a node").',
      );
    }
  }
}
