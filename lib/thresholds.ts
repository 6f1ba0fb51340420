/**
 * The disk alarm rules, derived from the runbook's numbers (`RUNBOOK_THRESHOLDS` in
 * contracts/thresholds.ts) or a configured {@link DiskThresholds}, and the checks of a configured
 * value. CloudWatch alarms, Prometheus rules, the dashboard and the docs are all
 * generated from these rules, so they cannot drift.
 */
import type { DiskAlarmKind } from '../contracts/alarms';
import type { DiskThresholds } from '../contracts/thresholds';

/** What a disk alarm watches, independent of CloudWatch or Prometheus syntax. */
export interface DiskAlarmRule {
  readonly kind: DiskAlarmKind;
  /** Prometheus alert name (the runbook's names where the runbook has one). */
  readonly prometheusName: string;
  readonly severity: 'warning' | 'critical';
  /** Which ratio or count the rule compares. */
  readonly signal: 'free-percent' | 'inodes-free-percent' | 'inodes-free' | 'agent-heartbeat';
  /** The rule fires while the signal is below this value. */
  readonly below: number;
  /** How long the condition must hold. */
  readonly minutes: number;
  readonly summary: string;
}

/** Every per-node disk alarm rule, derived from the thresholds. */
export function diskAlarmRules(t: DiskThresholds): readonly DiskAlarmRule[] {
  return [
    {
      kind: 'warning',
      prometheusName: 'StemeDBDiskSpaceWarning',
      severity: 'warning',
      signal: 'free-percent',
      below: t.warningFreePercent,
      minutes: t.warningMinutes,
      summary: `Disk space <${t.warningFreePercent}% on the data mount`,
    },
    {
      kind: 'critical',
      prometheusName: 'StemeDBDiskSpaceCritical',
      severity: 'critical',
      signal: 'free-percent',
      below: t.criticalFreePercent,
      minutes: t.criticalMinutes,
      summary: `Disk space <${t.criticalFreePercent}% on the data mount`,
    },
    {
      kind: 'inode-warning',
      prometheusName: 'StemeDBInodeExhaustion',
      severity: 'warning',
      signal: 'inodes-free-percent',
      below: t.inodeWarningFreePercent,
      minutes: t.inodeWarningMinutes,
      summary: `Inodes <${t.inodeWarningFreePercent}% available`,
    },
    {
      kind: 'emergency-space',
      prometheusName: 'StemeDBDiskSpaceEmergency',
      severity: 'critical',
      signal: 'free-percent',
      below: t.emergencyFreePercent,
      minutes: t.emergencyMinutes,
      summary: `Disk space <${t.emergencyFreePercent}% on the data mount: writes are about to fail`,
    },
    {
      kind: 'emergency-inodes',
      prometheusName: 'StemeDBInodesNearlyExhausted',
      severity: 'critical',
      signal: 'inodes-free',
      below: t.emergencyInodesFree,
      minutes: t.emergencyMinutes,
      summary: `Fewer than ${t.emergencyInodesFree} free inodes on the data mount`,
    },
    {
      kind: 'no-data',
      prometheusName: 'StemeDBDiskMetricsAbsent',
      severity: 'warning',
      signal: 'agent-heartbeat',
      below: 1,
      minutes: t.noDataMinutes,
      summary: 'No disk metrics from the node: a full disk would go unseen',
    },
  ];
}

/** Validation levels ("recovered"), as a pure check the Lambdas and scripts share. */
export function isRecovered(
  t: DiskThresholds,
  usage: { readonly usedPercent: number; readonly inodesFreePercent: number },
): boolean {
  return usage.usedPercent < t.recoveredUsedPercent && usage.inodesFreePercent > t.recoveredInodesFreePercent;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isWholeNumber = (v: unknown): v is number => Number.isInteger(v);

/** The accepted form of each threshold, by key: the check and the words of its error. */
const THRESHOLD_RULES: ReadonlyArray<{
  readonly keys: readonly (keyof DiskThresholds)[];
  readonly accepts: (v: unknown) => boolean;
  readonly expected: string;
}> = [
  {
    keys: [
      'warningFreePercent',
      'criticalFreePercent',
      'inodeWarningFreePercent',
      'emergencyFreePercent',
      'recoveredUsedPercent',
      'recoveredInodesFreePercent',
    ],
    accepts: (v) => isFiniteNumber(v) && v > 0 && v < 100,
    expected: 'a number above 0 and below 100',
  },
  {
    keys: ['warningMinutes', 'criticalMinutes', 'inodeWarningMinutes', 'emergencyMinutes', 'noDataMinutes'],
    // CloudWatch allows at most 1 day of evaluation (1440 one-minute periods).
    accepts: (v) => isWholeNumber(v) && v >= 1 && v <= 1440,
    expected: 'a whole number of minutes from 1 to 1440',
  },
  {
    keys: ['emergencyInodesFree'],
    accepts: (v) => isWholeNumber(v) && v >= 1,
    expected: 'a whole number of at least 1',
  },
  {
    keys: ['fillsWithinHours', 'fillsLookbackHours'],
    accepts: (v) => isFiniteNumber(v) && v > 0 && v <= 24 * 30,
    expected: 'a number of hours above 0 and at most 720',
  },
];

/**
 * Checks that the thresholds are numbers in a sensible order and returns the problems found,
 * each naming the key under `thresholds.` and the accepted form. Empty when valid.
 */
export function thresholdProblems(t: DiskThresholds): string[] {
  const problems: string[] = [];
  for (const rule of THRESHOLD_RULES) {
    for (const key of rule.keys) {
      const v: unknown = t[key];
      if (!rule.accepts(v))
        problems.push(`thresholds.${key} is ${JSON.stringify(v)}; expected ${rule.expected}`);
    }
  }
  if (problems.length > 0) return problems;
  if (!(t.emergencyFreePercent < t.criticalFreePercent && t.criticalFreePercent < t.warningFreePercent)) {
    problems.push(
      `thresholds.emergencyFreePercent (${t.emergencyFreePercent}) < criticalFreePercent (${t.criticalFreePercent}) < warningFreePercent (${t.warningFreePercent}) must hold: each level must fire before the next`,
    );
  }
  if (t.recoveredUsedPercent > 100 - t.warningFreePercent) {
    problems.push(
      `thresholds.recoveredUsedPercent (${t.recoveredUsedPercent}) must be at most 100 - warningFreePercent (${100 - t.warningFreePercent}): a recovered disk must not still be in warning`,
    );
  }
  if (t.recoveredInodesFreePercent < t.inodeWarningFreePercent) {
    problems.push(
      `thresholds.recoveredInodesFreePercent (${t.recoveredInodesFreePercent}) must be at least inodeWarningFreePercent (${t.inodeWarningFreePercent})`,
    );
  }
  if (t.criticalMinutes > t.warningMinutes) {
    problems.push(
      `thresholds.criticalMinutes (${t.criticalMinutes}) must be at most warningMinutes (${t.warningMinutes}): critical must not wait longer than warning`,
    );
  }
  return problems;
}
