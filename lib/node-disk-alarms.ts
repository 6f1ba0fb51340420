import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { type DiskAlarmKind, diskAlarmName } from '../contracts/alarms';
import { INSTANCE_ID_PATTERN } from '../contracts/aws-ids';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import type { DiskThresholds } from '../contracts/thresholds';
import { AGENT_METRICS, agentNamespace } from './disk-metrics-agent';
import { type DiskAlarmRule, diskAlarmRules } from './thresholds';

export interface NodeDiskAlarmsProps {
  /** Prefix of alarm names. @default 'StemeDB' */
  readonly prefix?: string;
  /** StemeDB node name; part of every alarm name. */
  readonly nodeName: string;
  /** The node's instance (the agent's `InstanceId` dimension). */
  readonly instanceId: string;
  /** The data mount (the agent's `path` dimension). @default '/data' */
  readonly dataMount?: string;
  /** Namespace the node's agent publishes to. @default agentNamespace(prefix, instanceId) */
  readonly namespace?: string;
  /** Alarm levels and windows. */
  readonly thresholds: DiskThresholds;
  /** Topic notified on ALARM and on OK. @default no actions (EventBridge still sees state changes) */
  readonly topic?: sns.ITopic;
}

const ONE_MINUTE = Duration.minutes(1);

/**
 * The runbook's disk alarms for one node, from the thresholds module: warning, critical,
 * inode warning, the two emergency (symptom) alarms, and a "no data" alarm.
 *
 * Missing data never moves a threshold alarm (`MISSING` keeps its last state): a silent agent
 * neither starts automation nor turns a full disk's alarm back to OK. The no-data alarm is the
 * one that treats silence as breaching.
 */
export class NodeDiskAlarms extends Construct {
  public readonly alarms: Readonly<Record<DiskAlarmKind, cloudwatch.Alarm>>;
  /** Free space, % of total (the runbook's `avail / size`), for dashboards. */
  public readonly freePercent: cloudwatch.IMetric;
  /** Free inodes, % of total. */
  public readonly inodesFreePercent: cloudwatch.IMetric;
  /** Bytes available. */
  public readonly freeBytes: cloudwatch.Metric;
  /** Free inodes. */
  public readonly inodesFree: cloudwatch.Metric;

  constructor(scope: Construct, id: string, props: NodeDiskAlarmsProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const dataMount = props.dataMount ?? '/data';
    const namespace = props.namespace ?? agentNamespace(prefix, props.instanceId);
    if (!INSTANCE_ID_PATTERN.test(props.instanceId)) {
      throw new Error(
        `NodeDiskAlarms instanceId is ${JSON.stringify(props.instanceId)}; expected i- and 8 or 17 hex digits`,
      );
    }
    if (!/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/.test(props.nodeName)) {
      throw new Error(
        `NodeDiskAlarms nodeName is ${JSON.stringify(props.nodeName)}; expected 2-32 lower-case letters, digits and "-"`,
      );
    }
    const agentMetric = (metricName: string, statistic: string): cloudwatch.Metric =>
      new cloudwatch.Metric({
        namespace,
        metricName,
        dimensionsMap: { InstanceId: props.instanceId, path: dataMount },
        statistic,
        period: ONE_MINUTE,
      });
    this.freeBytes = agentMetric(AGENT_METRICS.free, 'Minimum');
    this.inodesFree = agentMetric(AGENT_METRICS.inodesFree, 'Minimum');
    this.freePercent = new cloudwatch.MathExpression({
      expression: '100 * free / total',
      usingMetrics: { free: this.freeBytes, total: agentMetric(AGENT_METRICS.total, 'Maximum') },
      label: 'Free space %',
      period: ONE_MINUTE,
    });
    this.inodesFreePercent = new cloudwatch.MathExpression({
      expression: '100 * ifree / itotal',
      usingMetrics: { ifree: this.inodesFree, itotal: agentMetric(AGENT_METRICS.inodesTotal, 'Maximum') },
      label: 'Free inodes %',
      period: ONE_MINUTE,
    });
    const heartbeat = agentMetric(AGENT_METRICS.total, 'SampleCount');

    const signal = (rule: DiskAlarmRule): cloudwatch.IMetric => {
      switch (rule.signal) {
        case 'free-percent':
          return this.freePercent;
        case 'inodes-free-percent':
          return this.inodesFreePercent;
        case 'inodes-free':
          return this.inodesFree;
        case 'agent-heartbeat':
          return heartbeat;
      }
    };

    const alarms: Partial<Record<DiskAlarmKind, cloudwatch.Alarm>> = {};
    for (const rule of diskAlarmRules(props.thresholds)) {
      const alarm = new cloudwatch.Alarm(this, `Alarm-${rule.kind}`, {
        alarmName: diskAlarmName(prefix, props.nodeName, rule.kind),
        alarmDescription: `${rule.summary} (${rule.prometheusName}, severity ${rule.severity}) on node ${props.nodeName} (${props.instanceId}, ${dataMount}).`,
        metric: signal(rule),
        threshold: rule.below,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: rule.minutes,
        datapointsToAlarm: rule.minutes,
        treatMissingData:
          rule.signal === 'agent-heartbeat'
            ? cloudwatch.TreatMissingData.BREACHING
            : cloudwatch.TreatMissingData.MISSING,
      });
      if (props.topic !== undefined) {
        alarm.addAlarmAction(new actions.SnsAction(props.topic));
        alarm.addOkAction(new actions.SnsAction(props.topic));
      }
      alarms[rule.kind] = alarm;
    }
    this.alarms = alarms as Record<DiskAlarmKind, cloudwatch.Alarm>;
  }
}
