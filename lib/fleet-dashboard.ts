import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import type { DiskThresholds } from '../contracts/thresholds';
import { freeSpaceAnnotations } from './disk-dashboard';
import { AGENT_METRICS, DEFAULT_AGENT_NAMESPACE } from './disk-metrics-agent';

export interface FleetDiskDashboardProps {
  /** Name prefix: the dashboard is `<prefix>-disk-fleet`, and every node namespace starts `CWAgent/<prefix>/`. @default 'StemeDB' */
  readonly prefix?: string;
  /** The data mount (the agent's `path` dimension). @default '/data' */
  readonly dataMount?: string;
  /** Levels drawn as annotations. */
  readonly thresholds: DiskThresholds;
  /** Names of the per-shard detail dashboards, linked from the header. @default none */
  readonly shardDashboards?: readonly string[];
  /** How many of the worst nodes each graph draws, 1 to 100. @default 20 */
  readonly worstNodes?: number;
}

/**
 * The fleet overview: the worst nodes first, whatever the fleet's size. Each graph is one
 * `SEARCH` over every node's namespace (`CWAgent/<prefix>/<instance>`) sorted with `SORT` and cut
 * to the worst N, so the dashboard has a fixed handful of widgets and metrics (CloudWatch allows
 * 500 widgets per dashboard and a SEARCH returns at most 500 series) and needs no change when a
 * node is added. The per-node detail lives on the shard dashboards it links.
 */
export class FleetDiskDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;
  /** `<prefix>-disk-fleet`. */
  public readonly dashboardName: string;

  constructor(scope: Construct, id: string, props: FleetDiskDashboardProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const dataMount = props.dataMount ?? '/data';
    const worst = props.worstNodes ?? 20;
    const t = props.thresholds;
    if (!Number.isInteger(worst) || worst < 1 || worst > 100) {
      throw new Error(`FleetDiskDashboard worstNodes is ${worst}; expected a whole number from 1 to 100`);
    }
    if (!/^\/[A-Za-z0-9._/-]*$/.test(dataMount)) {
      throw new Error(
        `FleetDiskDashboard dataMount is ${JSON.stringify(dataMount)}; expected an absolute path`,
      );
    }
    const search = (metric: string, statistic: string) =>
      `SEARCH('"${DEFAULT_AGENT_NAMESPACE}/${prefix}" MetricName="${metric}" path="${dataMount}"', '${statistic}', 300)`;
    const graph = (title: string, expression: string, annotations?: cloudwatch.HorizontalAnnotation[]) =>
      new cloudwatch.GraphWidget({
        title,
        width: 12,
        height: 8,
        left: [
          new cloudwatch.MathExpression({
            expression,
            // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudWatch's own dynamic label, filled per series.
            label: "${PROP('Dim.InstanceId')}",
            period: Duration.minutes(5),
          }),
        ],
        leftYAxis: { min: 0, showUnits: false },
        leftAnnotations: annotations,
        legendPosition: cloudwatch.LegendPosition.RIGHT,
      });
    const links = (props.shardDashboards ?? [])
      .map((name) => `[${name}](#dashboards:name=${name})`)
      .join(' · ');
    this.dashboardName = `${prefix}-disk-fleet`;
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: this.dashboardName,
      defaultInterval: Duration.hours(24),
    });
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        width: 24,
        height: 2,
        markdown: `# ${prefix} disk: fleet\nThe ${worst} nodes with the least free space and inodes, from every node's own namespace (${DEFAULT_AGENT_NAMESPACE}/${prefix}/<instance>), worst first; one line per instance. Per-node detail: ${links === '' ? `${prefix}-disk` : `${prefix}-disk · ${links}`}.`,
      }),
    );
    this.dashboard.addWidgets(
      graph(
        `Least free space % (worst ${worst})`,
        `SORT(100 - ${search(AGENT_METRICS.usedPercent, 'Maximum')}, MIN, ASC, ${worst})`,
        freeSpaceAnnotations(t),
      ),
      graph(
        `Fewest free inodes (worst ${worst})`,
        `SORT(${search(AGENT_METRICS.inodesFree, 'Minimum')}, MIN, ASC, ${worst})`,
      ),
    );
    this.dashboard.addWidgets(
      graph(
        `Least bytes available (worst ${worst})`,
        `SORT(${search(AGENT_METRICS.free, 'Minimum')}, MIN, ASC, ${worst})`,
      ),
      graph(
        `Fastest filling: used % change per hour (top ${worst})`,
        `SORT(RATE(${search(AGENT_METRICS.usedPercent, 'Maximum')}) * 3600, MAX, DESC, ${worst})`,
      ),
    );
  }
}
