/**
 * Prometheus alert rules for the data disk, generated from the thresholds module.
 *
 * The runbook's three Prevention rules keep their names, `for:` windows, labels and annotations;
 * the Metrics Alerts symptoms, a "fills within N hours" prediction and a "no data" rule are added.
 * Every threshold comes from a {@link DiskThresholds} value, so the CloudWatch alarms, these rules
 * and docs/thresholds.md cannot drift apart. Pure: no file or AWS access.
 */
import { stringify } from 'yaml';
import type { AlertKind } from '../contracts/alarms';
import type { DiskThresholds } from '../contracts/thresholds';
import { type DiskAlarmRule, diskAlarmRules } from './thresholds';

export interface PrometheusAlertRule {
  readonly alert: string;
  readonly expr: string;
  /** Prometheus duration, e.g. `15m`. */
  readonly for: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface PrometheusRuleGroup {
  readonly name: string;
  readonly rules: readonly PrometheusAlertRule[];
}

/** The shape of a Prometheus rules file (and of an AMP rule groups namespace's data). */
export interface PrometheusRuleFile {
  readonly groups: readonly PrometheusRuleGroup[];
}

export interface PrometheusRuleOptions {
  /** Mount point of the StemeDB data filesystem, as node_exporter's `mountpoint` label shows it. */
  readonly dataMount: string;
}

/** The rule group's name, as the runbook names it. */
export const RULE_GROUP_NAME = 'stemedb_disk';

/** Name of the Prometheus-only predictive alert. */
export const FILLS_SOON_ALERT = 'StemeDBDiskFillsWithinHours';

/**
 * Label that carries the alarm kind, so Alertmanager can route an alert to the same automation
 * as the CloudWatch alarm of that kind.
 */
export const ALARM_KIND_LABEL = 'stemedb_alarm_kind';

/**
 * Label that names the StemeDB node (`lib/config.ts` node name) an alert is about, so the alarm
 * router knows whose disk to remediate. It is a target label the scrape configuration sets on
 * each node's node_exporter (e.g. `relabel_configs` or a `labels:` block in `static_configs`); the
 * threshold rules keep every series label, and the "no data" rule keeps it explicitly. An alert
 * without it notifies but starts nothing (the router logs `unknown-node`).
 */
export const NODE_LABEL = 'stemedb_node';

/**
 * How far back the "no data" rule looks for a node that used to report its data mount. A node
 * silent for longer than this is taken as decommissioned and its alert resolves.
 */
export const NO_DATA_MEMORY_HOURS = 24;

/** Runbook section an operator (or the router) follows when the alert fires. */
export const RUNBOOK_SECTION: Readonly<Record<AlertKind, string>> = {
  warning: 'Disk Full runbook: Quick Diagnosis (then §2 WAL Cleanup, §3 Compaction or §5 Volume Expansion)',
  critical:
    'Disk Full runbook: Quick Diagnosis (§1 Emergency Cleanup above 98% used, else §5 Volume Expansion)',
  'inode-warning': 'Disk Full runbook: §4 Inode Exhaustion',
  'emergency-space':
    'Disk Full runbook: §1 Emergency Cleanup (then §5 Volume Expansion if still above 95% used)',
  'emergency-inodes': 'Disk Full runbook: §4 Inode Exhaustion',
  'no-data': 'Disk Full runbook: Quick Diagnosis (run df -h and df -i on the node by hand)',
  'fills-soon': 'Disk Full runbook: Quick Diagnosis (then §2 WAL Cleanup or §5 Volume Expansion)',
};

/** The rule groups object for a rules file, one group `stemedb_disk`. */
export function prometheusRuleGroups(t: DiskThresholds, options: PrometheusRuleOptions): PrometheusRuleFile {
  const mount = options.dataMount;
  if (!/^\/[^"\\\n]*$/.test(mount)) {
    throw new Error(
      `dataMount is ${JSON.stringify(mount)}; expected an absolute path without quotes, backslashes or newlines`,
    );
  }
  const rules: PrometheusAlertRule[] = diskAlarmRules(t).map((rule) => alertFor(rule, mount, t));
  // The prediction goes after the threshold rules; the no-data rule stays last.
  rules.splice(rules.length - 1, 0, fillsSoonAlert(t, mount));
  return { groups: [{ name: RULE_GROUP_NAME, rules }] };
}

/** The rules file text: a generated-file header comment, then the YAML of {@link prometheusRuleGroups}. */
export function renderPrometheusRules(t: DiskThresholds, options: PrometheusRuleOptions): string {
  const header = [
    '# GENERATED FILE: do not edit by hand.',
    '# Source: lib/thresholds.ts (RUNBOOK_THRESHOLDS) through lib/prometheus-rules.ts;',
    `# regenerate with \`npm run rules\` (data mount ${options.dataMount}).`,
    '# Check: promtool check rules prometheus/stemedb-disk-rules.yml',
    '# Tests: promtool test rules prometheus/tests/*.test.yml',
    '',
  ].join('\n');
  return header + stringify(prometheusRuleGroups(t, options), { lineWidth: 0 });
}

/** A fraction for PromQL from a percentage, without float noise (`7` → `0.07`, not `0.07000000000000001`). */
export function percentToRatio(percent: number): string {
  return String(Number((percent / 100).toPrecision(12)));
}

/** A PromQL duration from minutes (`15` → `15m`, `120` → `2h`, `1.5` → `90s`). */
export function promDuration(minutes: number): string {
  const seconds = Math.round(minutes * 60);
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

function selector(metric: string, mount: string): string {
  return `${metric}{mountpoint="${mount}"}`;
}

/** `avail / size` on the data mount; both sides filtered, so the match is one series to one series. */
function freeRatio(mount: string): string {
  return `(${selector('node_filesystem_avail_bytes', mount)} / ${selector('node_filesystem_size_bytes', mount)})`;
}

/**
 * Free inodes / total inodes on the data mount. The runbook leaves this rule unfiltered; it is
 * filtered here because the alert carries `stemedb_alarm_kind="inode-warning"`, which starts
 * §4 Inode Exhaustion on the data mount: an unfiltered rule would also fire for `/`, `/boot` or a
 * container overlay and start cleanup on the wrong filesystem. The CloudWatch inode alarm watches
 * the data mount only, too. Other filesystems belong to the host's generic node alerts.
 */
function inodeFreeRatio(mount: string): string {
  return `(${selector('node_filesystem_files_free', mount)} / ${selector('node_filesystem_files', mount)})`;
}

function labels(severity: string, kind: AlertKind): Record<string, string> {
  return { severity, [ALARM_KIND_LABEL]: kind };
}

function alertFor(rule: DiskAlarmRule, mount: string, t: DiskThresholds): PrometheusAlertRule {
  const alert = rule.prometheusName;
  const window = promDuration(rule.minutes);
  const runbook = RUNBOOK_SECTION[rule.kind];
  // A threshold rule: the same alert, window, labels and runbook link, its own expression and text.
  const threshold = (expr: string, summary: string, description: string): PrometheusAlertRule => ({
    alert,
    expr,
    for: window,
    labels: labels(rule.severity, rule.kind),
    annotations: { summary, description, runbook },
  });
  switch (rule.signal) {
    case 'free-percent':
      return threshold(
        `${freeRatio(mount)} < ${percentToRatio(rule.below)}`,
        // The runbook's wording for its two rules; the emergency rule keeps the module's summary.
        rule.kind === 'emergency-space'
          ? `Disk space <${rule.below}% on ${mount}: writes are about to fail`
          : `Disk space <${rule.below}% on ${mount}`,
        'Available: {{ $value | humanizePercentage }}',
      );
    case 'inodes-free-percent':
      return threshold(
        `${inodeFreeRatio(mount)} < ${percentToRatio(rule.below)}`,
        `Inodes <${rule.below}% available`,
        `Available on ${mount}: {{ $value | humanizePercentage }}`,
      );
    case 'inodes-free':
      return threshold(
        `${selector('node_filesystem_files_free', mount)} < ${rule.below}`,
        `Fewer than ${rule.below} free inodes on ${mount}`,
        'Free inodes: {{ $value }}',
      );
    case 'agent-heartbeat':
      return noDataAlert(rule, mount, t);
  }
}

/**
 * Fires while free space is still above the critical level when the trend of the last
 * `fillsLookbackHours` says the data mount is full within `fillsWithinHours`: before any
 * threshold rule, even above the warning level. Once the disk is critical, the critical and
 * emergency rules speak instead. It waits as long as the warning rule, so a short burst
 * (a backup written then removed) does not page. Its value is the current free ratio.
 */
function fillsSoonAlert(t: DiskThresholds, mount: string): PrometheusAlertRule {
  const lookback = promDuration(t.fillsLookbackHours * 60);
  const horizonSeconds = Math.round(t.fillsWithinHours * 3600);
  return {
    alert: FILLS_SOON_ALERT,
    expr: [
      `${freeRatio(mount)} >= ${percentToRatio(t.criticalFreePercent)}`,
      'and',
      `predict_linear(${selector('node_filesystem_avail_bytes', mount)}[${lookback}], ${horizonSeconds}) < 0`,
    ].join('\n'),
    for: promDuration(t.warningMinutes),
    labels: labels('warning', 'fills-soon'),
    annotations: {
      summary: `Disk on ${mount} projected to fill within ${t.fillsWithinHours}h`,
      description: `Available: {{ $value | humanizePercentage }}, falling fast enough (fitted over ${t.fillsLookbackHours}h) to reach 0 within ${t.fillsWithinHours}h`,
      runbook: RUNBOOK_SECTION['fills-soon'],
    },
  };
}

/**
 * No data: either no node reports the data mount at all (`absent`), or one node that reported it
 * within the last {@link NO_DATA_MEMORY_HOURS} hours no longer does (exporter down, scrape failing,
 * or the mount is gone, e.g. a `nofail` fstab entry that did not mount). Compared per
 * job/instance/mountpoint/stemedb_node, so a device or fstype change after a volume swap is not
 * "no data".
 */
function noDataAlert(rule: DiskAlarmRule, mount: string, t: DiskThresholds): PrometheusAlertRule {
  const avail = selector('node_filesystem_avail_bytes', mount);
  const keys = `job, instance, mountpoint, ${NODE_LABEL}`;
  return {
    alert: rule.prometheusName,
    expr: [
      `absent(${avail})`,
      'or',
      `(max by (${keys}) (max_over_time(${avail}[${NO_DATA_MEMORY_HOURS}h])) unless on (${keys}) ${avail})`,
    ].join('\n'),
    for: promDuration(t.noDataMinutes),
    labels: labels(rule.severity, rule.kind),
    annotations: {
      summary: `No disk metrics for ${mount}: a full disk would go unseen`,
      description: `{{ if $labels.instance }}{{ $labels.instance }} stopped reporting ${mount}{{ else }}No node reports ${mount}{{ end }} for at least ${t.noDataMinutes}m`,
      runbook: RUNBOOK_SECTION[rule.kind],
    },
  };
}
