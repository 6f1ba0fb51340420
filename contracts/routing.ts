/**
 * The routing table and the kill switch: what an alarm of each kind starts, as the stack passes it
 * to the alarm router (`ROUTES`, computed by {@link routeTable}) and as the router's tests run it.
 */
import type { RoutedKind } from './alarms';
import { documentName } from './documents';

/** The section each routed alarm kind starts first ('' for none): lib/config.ts `remediation`. */
export interface RouteSections {
  readonly warning: string;
  readonly critical: string;
  readonly emergencySpace: string;
  readonly inodes: string;
  readonly fillsSoon: string;
}

/** The routing table as deployed: routed kind → ordered documents (the router's `ROUTES`). */
export type RouteTable = Readonly<Record<RoutedKind, readonly string[]>>;

/**
 * THE routing table: the stack passes it to the router as `ROUTES` (lib/disk-remediation.ts
 * `routesFor`), and the router's tests run with it. Alarm kind → documents: the configured
 * section first, then the runbook's next step when the alarm stays in ALARM (critical: archive
 * WAL when expansion is refused; emergency-space: expand when cleanup was not enough). A kind
 * configured as `""` starts nothing; `no-data` never routes (missing data never starts automation).
 * `fills-soon` is the Prometheus-only prediction (no CloudWatch alarm has it): its section relieves
 * the disk before it is full; the document itself reports to the topic.
 */
export function routeTable(prefix: string, remediation: RouteSections): RouteTable {
  const chain = (first: string, next: readonly string[]): string[] =>
    first === '' ? [] : [...new Set([first, ...next].map((section) => documentName(prefix, section)))];
  return {
    critical: chain(remediation.critical, ['ArchiveWal']),
    warning: chain(remediation.warning, []),
    'emergency-space': chain(remediation.emergencySpace, ['ExpandVolume']),
    'inode-warning': chain(remediation.inodes, []),
    'emergency-inodes': chain(remediation.inodes, []),
    'fills-soon': chain(remediation.fillsSoon, []),
  };
}

/**
 * The router's kill switch (the SSM parameter `/<prefix>/automation-mode`, read at each
 * invocation): `act` starts the routed documents; `observe` starts nothing and notifies what it
 * would have started; `off` starts and notifies nothing. lib/config.ts `remediation.mode` is its
 * initial value.
 */
export const AUTOMATION_MODES = ['act', 'observe', 'off'] as const;
export type AutomationMode = (typeof AUTOMATION_MODES)[number];
