/**
 * Alarm kinds: the names the alarms, the Prometheus rules and the alarm router key on.
 *
 * A node's CloudWatch alarm is `<prefix>-<node>-disk-<kind>` ({@link diskAlarmName}:
 * lib/node-disk-alarms.ts creates them, lambda/shared/alarm-event.ts parses them); a Prometheus
 * rule carries its kind in the `stemedb_alarm_kind` label (lib/prometheus-rules.ts), which the
 * router reads from Alertmanager's notifications.
 */

/** The kinds of disk alarm every node gets, in the order of lib/thresholds.ts `diskAlarmRules`. */
export const DISK_ALARM_KINDS = [
  'warning',
  'critical',
  'inode-warning',
  'emergency-space',
  'emergency-inodes',
  'no-data',
] as const;

/** A CloudWatch disk alarm kind. Names are stable: the alarm router keys on them. */
export type DiskAlarmKind = (typeof DISK_ALARM_KINDS)[number];

/**
 * Every kind an alert may carry, and so every kind a route may name: the CloudWatch alarm kinds
 * plus the Prometheus-only prediction `fills-soon` (CloudWatch metric math has no linear
 * regression), in the `stemedb_alarm_kind` label of the Prometheus rules.
 */
export const ALERT_KINDS = [...DISK_ALARM_KINDS, 'fills-soon'] as const;

/** A CloudWatch alarm kind or a Prometheus alert kind (`fills-soon`). */
export type AlertKind = (typeof ALERT_KINDS)[number];

/** Alarm kinds that never start automation: missing data is not a disk problem to remediate. */
export const NEVER_ROUTED_KINDS: ReadonlySet<DiskAlarmKind> = new Set<DiskAlarmKind>(['no-data']);

/** The kinds that may route somewhere (every kind but those in {@link NEVER_ROUTED_KINDS}). */
export type RoutedKind = Exclude<AlertKind, 'no-data'>;

/** Alarm name contract shared with the router: `<prefix>-<node>-disk-<kind>`. */
export function diskAlarmName(prefix: string, nodeName: string, kind: DiskAlarmKind): string {
  return `${prefix}-${nodeName}-disk-${kind}`;
}
