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
import { nodesByShard, SHARED_STACK_SHARD, shardDashboardName } from './fleet-shards';
import { NotificationTopic } from './notification-topic';
import { OperatorPolicy } from './operator-policy';
import { PreventionDocuments } from './prevention-documents';
import { PrometheusAlerting } from './prometheus-alerting';
import { PrometheusRuleGroupsNamespace } from './prometheus-rule-groups-namespace';
import { renderPrometheusRules } from './prometheus-rules';
import { SharedStackExports } from './shared-stack-exports';
import { DataVolumeSnapshotPolicy } from './snapshot-policy';
import { StackOutputs } from './stack-outputs';
import { StemeDbKey } from './stemedb-key';
import { addStemeDbNodes, type StemeDbNode } from './stemedb-node';
import { WalArchiveBucket } from './wal-archive-bucket';

export interface StemeDbDiskStackProps extends StackProps {
  /** The validated configuration (see lib/config.ts). */
  readonly config: StemeDbConfig;
}

/**
 * The StemeDB disk-full automation's shared stack `<prefix>-Disk`: shared resources (key, topic,
 * agent installation, snapshots, documents, Lambdas, router, dashboard, the operator policy, the
 * stack outputs) and one {@link StemeDbNode} per node of shard 0 (lib/fleet-shards.ts: every
 * node while `fleet.shards` is 0, the single-stack layout, synthesized exactly as before shards
 * existed). With `fleet.shards` > 0 it also has the fleet overview dashboard and the three fixed
 * exports that the node stacks ({@link StemeDbNodeStack}) import.
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
    // Unindented JSON: the same template, about a fifth smaller (two nodes: 603 KB instead of
    // 762 KB), so CloudFormation's 1 MB template limit binds later. `props` may turn it back on.
    super(scope, id, { suppressTemplateIndentation: true, ...props });
    const { config } = props;
    const { prefix } = config;

    const sharedNodes = nodesByShard(config.nodes, config.fleet.shards).get(SHARED_STACK_SHARD) ?? [];
    const key = new StemeDbKey(this, 'Key', {
      prefix,
      // Node stacks import the key, whose policy they cannot extend: granted here once.
      grantVolumeEncryption: config.fleet.shards > 0,
    }).key;
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

    this.nodes = addStemeDbNodes(
      this,
      sharedNodes,
      config,
      { key, topic, archive: archive.nodeAccess() },
      agent,
    );

    const remediation = new DiskRemediation(this, 'Remediation', { config, topic, archive });
    const prevention = new PreventionDocuments(this, 'Prevention', {
      prefix,
      instanceIds: config.nodes.map((n) => n.instanceId),
      configFile: config.configFile,
      serviceName: config.serviceName,
      healthUrl: config.healthUrl,
      prevention: config.prevention,
    });

    const { dashboard } = new DiskDashboard(this, 'Dashboard', {
      prefix,
      automationNamespace: METRICS_NAMESPACE,
      thresholds: config.thresholds,
      nodes: this.nodes.map((n) => ({ nodeName: n.nodeName, alarms: n.alarms })),
    });
    // Only with node stacks: a single-stack deployment synthesizes exactly as before shards existed.
    const shardDashboards = Array.from({ length: config.fleet.shards }, (_, i) =>
      shardDashboardName(prefix, i + 1),
    );
    let fleetDashboard: FleetDiskDashboard | undefined;
    if (config.fleet.shards > 0) {
      new SharedStackExports(this, 'Exports', { prefix, key, topic, archiveBucket: archive.bucket });
      fleetDashboard = new FleetDiskDashboard(this, 'FleetDashboard', {
        prefix,
        dataMount: config.dataMount,
        thresholds: config.thresholds,
        shardDashboards,
      });
    }

    const automationDocuments = Object.values(remediation.automationDocuments);
    const commandDocuments = [
      ...Object.values(remediation.commandDocuments),
      prevention.journaldLimits,
      prevention.storageSettings,
    ];
    const operator = new OperatorPolicy(this, 'Operator', {
      prefix,
      automationDocuments,
      commandDocuments,
      automationRole: remediation.automationRole,
      modeParameter: remediation.modeParameter,
      dashboard,
      otherDashboardNames:
        fleetDashboard === undefined ? undefined : [fleetDashboard.dashboardName, ...shardDashboards],
      logGroups: [
        remediation.router,
        remediation.expandVolume,
        remediation.waitForModification,
        remediation.verifyArchive,
      ].map((f) => f.logGroup),
    });
    let prometheusAlerting: PrometheusAlerting | undefined;
    if (config.prometheusWorkspaceId !== undefined || config.selfManagedAlertmanager) {
      prometheusAlerting = new PrometheusAlerting(this, 'PrometheusAlerting', {
        router: remediation.router.function,
        deadLetterQueue: remediation.routerDeadLetterQueue,
        encryptionKey: key,
        workspaceId: config.prometheusWorkspaceId,
        selfManagedPublisher: config.selfManagedAlertmanager,
        prefix,
      });
    }

    new StackOutputs(this, 'Outputs', {
      prefix,
      dashboard,
      topic,
      archiveBucket: archive.bucket,
      automationRole: remediation.automationRole,
      automationDocuments,
      commandDocuments,
      modeParameter: remediation.modeParameter,
      operatorPolicy: operator.policy,
      prometheusAlertTopic: prometheusAlerting?.topic,
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
