/**
 * Renders docs/thresholds.md: every disk alarm with its condition, window, severity, the
 * CloudWatch metric or math it watches and the Prometheus expression, plus the Validation
 * ("recovered") levels. Generated from the thresholds module by `npm run rules`. Pure.
 */

import type { DiskThresholds } from '../contracts/thresholds';
import {
  FILLS_SOON_ALERT,
  type PrometheusAlertRule,
  percentToRatio,
  prometheusRuleGroups,
} from './prometheus-rules';
import { type DiskAlarmRule, diskAlarmRules } from './thresholds';

export interface ThresholdsDocOptions {
  /** Mount point of the data filesystem (node_exporter `mountpoint`, CloudWatch agent `path`). */
  readonly dataMount: string;
}

/**
 * What each signal is in CloudWatch: the node's own namespace `CWAgent/<Prefix>/<InstanceId>`,
 * dimensions `{InstanceId, path}` (path = the data mount), the agent's metric names; mirrors
 * lib/node-disk-alarms.ts.
 */
export function cloudWatchSignal(rule: DiskAlarmRule): string {
  switch (rule.signal) {
    case 'free-percent':
      return '`100 * disk_free / disk_total` (Minimum / Maximum, 1 min)';
    case 'inodes-free-percent':
      return '`100 * disk_inodes_free / disk_inodes_total` (Minimum / Maximum, 1 min)';
    case 'inodes-free':
      return '`disk_inodes_free` (Minimum, 1 min)';
    case 'agent-heartbeat':
      return '`disk_total` SampleCount < 1 per minute (missing data = breaching)';
  }
}

function condition(rule: DiskAlarmRule): string {
  switch (rule.signal) {
    case 'free-percent':
      return `available < ${rule.below}% of total`;
    case 'inodes-free-percent':
      return `free inodes < ${rule.below}% of total`;
    case 'inodes-free':
      return `free inodes < ${rule.below}`;
    case 'agent-heartbeat':
      return 'no disk datapoints';
  }
}

/** A Markdown table cell: one line, pipes escaped, in a code span. */
function codeCell(text: string): string {
  return `\`${text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|')}\``;
}

function row(cells: readonly string[]): string {
  return `| ${cells.join(' | ')} |`;
}

function ruleByName(rules: readonly PrometheusAlertRule[], name: string): PrometheusAlertRule {
  const found = rules.find((r) => r.alert === name);
  if (found === undefined) throw new Error(`no Prometheus rule named ${name}`);
  return found;
}

/** The Markdown text of docs/thresholds.md. */
export function renderThresholdsDoc(t: DiskThresholds, options: ThresholdsDocOptions): string {
  const promRules = prometheusRuleGroups(t, options).groups.flatMap((g) => g.rules);
  const lines: string[] = [
    '<!-- GENERATED FILE: do not edit by hand. Source: lib/thresholds.ts (RUNBOOK_THRESHOLDS) through',
    '     lib/thresholds-doc.ts; regenerate with `npm run rules`. -->',
    '',
    '# Disk alarm thresholds',
    '',
    `Every alarm below is generated from one thresholds module (\`lib/thresholds.ts\`), for the data`,
    `mount \`${options.dataMount}\`: the CloudWatch alarms (one set per node), the Prometheus rules`,
    '(`prometheus/stemedb-disk-rules.yml`, and the Amazon Managed Service for Prometheus namespace',
    'when a workspace is configured), the dashboard annotations and this page. Percentages are of the',
    "filesystem's total size or total inodes, as the runbook computes them (`avail / size`).",
    '',
    "CloudWatch: each node's own namespace `CWAgent/<Prefix>/<InstanceId>` (only that node's instance",
    'policy may publish there), dimensions `InstanceId` and `path` (the data mount); alarm name',
    '`<Prefix>-<node>-disk-<kind>`. Prometheus: node_exporter metrics filtered to',
    `\`mountpoint="${options.dataMount}"\`; every alert carries \`stemedb_alarm_kind=<kind>\` so`,
    'Alertmanager can route it to the same automation as the CloudWatch alarm of that kind.',
    '',
    '## Alarms',
    '',
    row([
      'Kind',
      'Prometheus alert',
      'Condition',
      'Window',
      'Severity',
      'CloudWatch metric/math',
      'Prometheus expr',
    ]),
    row(['---', '---', '---', '---', '---', '---', '---']),
  ];
  for (const rule of diskAlarmRules(t)) {
    const prom = ruleByName(promRules, rule.prometheusName);
    lines.push(
      row([
        `\`${rule.kind}\``,
        `\`${rule.prometheusName}\``,
        condition(rule),
        `${rule.minutes} min`,
        rule.severity,
        cloudWatchSignal(rule),
        codeCell(prom.expr),
      ]),
    );
  }
  const fills = ruleByName(promRules, FILLS_SOON_ALERT);
  lines.push(
    row([
      '`fills-soon`',
      `\`${FILLS_SOON_ALERT}\``,
      `linear trend over ${t.fillsLookbackHours} h reaches 0 within ${t.fillsWithinHours} h, while available >= ${t.criticalFreePercent}%`,
      `${t.warningMinutes} min`,
      fills.labels.severity ?? '',
      'none (Prometheus only: CloudWatch metric math has no linear regression)',
      codeCell(fills.expr),
    ]),
  );
  lines.push(
    '',
    "Sources: `warning`, `critical` and `inode-warning` are the runbook's Prevention rules",
    '(`StemeDBDiskSpaceWarning`, `StemeDBDiskSpaceCritical`, `StemeDBInodeExhaustion`);',
    '`emergency-space` and `emergency-inodes` are its Metrics Alerts (`node_filesystem_avail_bytes < 5% of total`,',
    '`node_filesystem_files_free < 1000`); `no-data` and `fills-soon` are added so that a silent agent never',
    'hides a full disk and a fast-filling disk is seen before any threshold.',
    '',
    '## Recovered (runbook Validation)',
    '',
    'A disk counts as recovered when both hold (`isRecovered` in `lib/thresholds.ts`); remediation',
    'checks this level after it acts. Used = 100% - available/total, the same convention as the alarms.',
    '',
    row(['Check', 'Recovered when', 'CloudWatch metric/math', 'Prometheus expr']),
    row(['---', '---', '---', '---']),
    row([
      'Disk usage',
      `used < ${t.recoveredUsedPercent}%`,
      '`100 - 100 * disk_free / disk_total`',
      codeCell(
        `(node_filesystem_avail_bytes{mountpoint="${options.dataMount}"} / node_filesystem_size_bytes{mountpoint="${options.dataMount}"}) > ${percentToRatio(100 - t.recoveredUsedPercent)}`,
      ),
    ]),
    row([
      'Inodes available',
      `free inodes > ${t.recoveredInodesFreePercent}%`,
      '`100 * disk_inodes_free / disk_inodes_total`',
      codeCell(
        `(node_filesystem_files_free{mountpoint="${options.dataMount}"} / node_filesystem_files{mountpoint="${options.dataMount}"}) > ${percentToRatio(t.recoveredInodesFreePercent)}`,
      ),
    ]),
    '',
  );
  return lines.join('\n');
}
