/**
 * The one place where the runbook's disk numbers live.
 *
 * CloudWatch alarms, Prometheus rules, the dashboard annotations, the docs and the Lambdas'
 * "recovered" check are all generated from a {@link DiskThresholds} value, so they cannot drift
 * (lib/thresholds.ts derives the alarm rules from it and checks a configured value).
 * Percentages are of the filesystem's total size (or total inodes), exactly as the runbook's
 * Prometheus expressions compute them: `avail / size`.
 */
export interface DiskThresholds {
  /** Runbook Prevention `StemeDBDiskSpaceWarning`: available space below this % of total. */
  readonly warningFreePercent: number;
  /** How long the warning condition must hold (`for: 15m`). */
  readonly warningMinutes: number;
  /** Runbook Prevention `StemeDBDiskSpaceCritical`: available space below this % of total. */
  readonly criticalFreePercent: number;
  /** How long the critical condition must hold (`for: 5m`). */
  readonly criticalMinutes: number;
  /** Runbook Prevention `StemeDBInodeExhaustion`: free inodes below this % of total. */
  readonly inodeWarningFreePercent: number;
  /** How long the inode warning must hold (`for: 15m`). */
  readonly inodeWarningMinutes: number;
  /** Runbook Metrics Alerts: `node_filesystem_avail_bytes < 5% of total`. */
  readonly emergencyFreePercent: number;
  /** Runbook Metrics Alerts: `node_filesystem_files_free < 1000`. */
  readonly emergencyInodesFree: number;
  /** How long an emergency (symptom) condition must hold before it alarms. */
  readonly emergencyMinutes: number;
  /** Runbook Validation: disk usage below this % counts as recovered (`< 80%`). */
  readonly recoveredUsedPercent: number;
  /** Runbook Validation: free inodes above this % counts as recovered (`> 10%`). */
  readonly recoveredInodesFreePercent: number;
  /** Predictive alert: the filesystem is projected to be full within this many hours. */
  readonly fillsWithinHours: number;
  /** How much history the prediction is fitted on, in hours. */
  readonly fillsLookbackHours: number;
  /** Minutes without any agent datapoint before the "no data" alarm fires. */
  readonly noDataMinutes: number;
}

/** The runbook's numbers (sections "Metrics Alerts", "Prevention" and "Validation"). */
export const RUNBOOK_THRESHOLDS: DiskThresholds = {
  warningFreePercent: 20,
  warningMinutes: 15,
  criticalFreePercent: 10,
  criticalMinutes: 5,
  inodeWarningFreePercent: 10,
  inodeWarningMinutes: 15,
  emergencyFreePercent: 5,
  emergencyInodesFree: 1000,
  emergencyMinutes: 2,
  recoveredUsedPercent: 80,
  recoveredInodesFreePercent: 10,
  fillsWithinHours: 4,
  fillsLookbackHours: 6,
  noDataMinutes: 10,
};
