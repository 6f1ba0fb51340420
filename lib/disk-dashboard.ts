import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import type { DiskThresholds } from '../contracts/thresholds';
import type { NodeDiskAlarms } from './node-disk-alarms';

export interface DiskDashboardNode {
  readonly nodeName: string;
  readonly alarms: NodeDiskAlarms;
}

export interface DiskDashboardProps {
  /** Dashboard name. @default '<prefix>-disk' */
  readonly dashboardName?: string;
  /** Name prefix. @default 'StemeDB' */
  readonly prefix?: string;
  /** Heading of the text widget. @default '<prefix> disk' */
  readonly title?: string;
  /** Levels drawn as horizontal annotations. */
  readonly thresholds: DiskThresholds;
  /** One row per node. @default none (an explanatory text widget only) */
  readonly nodes?: readonly DiskDashboardNode[];
  /** Metrics namespace of the remediation Lambdas: adds a row of what the automation decided and did. @default no automation row */
  readonly automationNamespace?: string;
}

/** CloudWatch's dashboard quotas (CloudWatch User Guide, "CloudWatch service quotas"). */
export const DASHBOARD_LIMITS = {
  widgetsPerDashboard: 500,
  metricsPerDashboard: 2500,
  metricsPerGraphWidget: 500,
  alarmsPerAlarmStatusWidget: 100,
} as const;
/** Widgets per node row: free %, bytes, inodes %, alarms. */
const WIDGETS_PER_NODE = 4;
/** Metrics and expressions per node row: free % (2 + 1), bytes (1), inodes % (2 + 1). */
const METRICS_PER_NODE = 7;
/** Most nodes one detail dashboard draws (a node stack holds 30, the shared stack 20). */
export const MAX_NODES_PER_DASHBOARD = Math.floor(
  Math.min(
    (DASHBOARD_LIMITS.widgetsPerDashboard - 4) / WIDGETS_PER_NODE,
    (DASHBOARD_LIMITS.metricsPerDashboard - 3) / METRICS_PER_NODE,
  ),
);

/** The horizontal lines of the free-space graph: warning, critical, emergency. */
export function freeSpaceAnnotations(t: DiskThresholds): cloudwatch.HorizontalAnnotation[] {
  return [
    { value: t.warningFreePercent, label: `warning < ${t.warningFreePercent}%`, color: '#ff7f0e' },
    { value: t.criticalFreePercent, label: `critical < ${t.criticalFreePercent}%`, color: '#d62728' },
    { value: t.emergencyFreePercent, label: `emergency < ${t.emergencyFreePercent}%`, color: '#7f0000' },
    {
      value: 100 - t.recoveredUsedPercent,
      label: `recovered > ${100 - t.recoveredUsedPercent}%`,
      color: '#2ca02c',
      fill: cloudwatch.Shading.NONE,
    },
  ];
}

/**
 * One CloudWatch dashboard (a shard's detail): per node, free space %, free bytes, free inodes % and the node's
 * alarm states, with the thresholds drawn as horizontal annotations.
 */
export class DiskDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: DiskDashboardProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const nodes = props.nodes ?? [];
    const t = props.thresholds;
    const title = props.title ?? `${prefix} disk`;
    if (nodes.length > MAX_NODES_PER_DASHBOARD) {
      throw new Error(
        `DiskDashboard nodes has ${nodes.length} nodes; one dashboard draws at most ${MAX_NODES_PER_DASHBOARD} (CloudWatch: ${DASHBOARD_LIMITS.widgetsPerDashboard} widgets and ${DASHBOARD_LIMITS.metricsPerDashboard} metrics per dashboard, ${WIDGETS_PER_NODE} widgets and ${METRICS_PER_NODE} metrics per node)`,
      );
    }
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName ?? `${prefix}-disk`,
      defaultInterval: Duration.hours(24),
    });
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        width: 24,
        height: 2,
        markdown:
          nodes.length === 0
            ? `# ${title}\nNo nodes configured yet: add them under \`stemedb.nodes\` in cdk.json or a \`-c stemedbConfig=\` file.`
            : `# ${title}\nFree space and inodes of the data mount per node. Lines: warning ${t.warningFreePercent}%, critical ${t.criticalFreePercent}%, emergency ${t.emergencyFreePercent}%; recovered when used < ${t.recoveredUsedPercent}% and inodes > ${t.recoveredInodesFreePercent}% free.`,
      }),
    );
    if (props.automationNamespace !== undefined) {
      const ns = props.automationNamespace;
      // Powertools EMF metrics carry a `service` dimension (the function name) besides their own.
      const search = (title: string, query: string) =>
        new cloudwatch.GraphWidget({
          title,
          width: 8,
          left: [
            new cloudwatch.MathExpression({
              expression: `SEARCH('${query}', 'Sum', 300)`,
              label: '',
              period: Duration.minutes(5),
            }),
          ],
          leftYAxis: { min: 0, showUnits: false },
        });
      this.dashboard.addWidgets(
        search('Alarm router decisions', `{${ns},decision,service} MetricName="RouterDecision"`),
        search(
          'Volume expansions by node',
          `{${ns},node,service} MetricName=("ExpansionStarted" OR "ExpansionReused" OR "ExpansionRefused" OR "ExpansionDeferred" OR "ExpansionError")`,
        ),
        search(
          'WAL archive verification by node',
          `{${ns},node,service} MetricName=("ArchiveVerifiedObjects" OR "ArchiveMismatches" OR "ArchiveVerifyRefused" OR "ArchiveVerifyError")`,
        ),
      );
    }
    for (const node of nodes) {
      const a = node.alarms;
      this.dashboard.addWidgets(
        new cloudwatch.GraphWidget({
          title: `${node.nodeName}: free space %`,
          width: 6,
          left: [a.freePercent],
          leftYAxis: { min: 0, max: 100, label: '%', showUnits: false },
          leftAnnotations: freeSpaceAnnotations(t),
        }),
        new cloudwatch.GraphWidget({
          title: `${node.nodeName}: bytes available`,
          width: 6,
          left: [a.freeBytes.with({ label: 'available bytes' })],
          leftYAxis: { min: 0 },
        }),
        new cloudwatch.GraphWidget({
          title: `${node.nodeName}: free inodes %`,
          width: 6,
          left: [a.inodesFreePercent],
          leftYAxis: { min: 0, max: 100, label: '%', showUnits: false },
          leftAnnotations: [
            {
              value: t.inodeWarningFreePercent,
              label: `inode warning < ${t.inodeWarningFreePercent}%`,
              color: '#ff7f0e',
            },
          ],
        }),
        new cloudwatch.AlarmStatusWidget({
          title: `${node.nodeName}: alarms`,
          width: 6,
          alarms: Object.values(a.alarms),
        }),
      );
    }
  }
}
