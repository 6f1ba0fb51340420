/**
 * Automation document names: every runbook section is an Automation document `<prefix>-<Section>`.
 */

/** The runbook sections this stack deploys as Automation documents (`<prefix>-<Section>`); the router may start any of them. */
export const REMEDIATION_SECTIONS = [
  'DiagnoseDiskFull',
  'EmergencyCleanup',
  'WalCleanup',
  'CompactDatabase',
  'InodeCleanup',
  'ExpandVolume',
  'ArchiveWal',
  'ValidateDiskHealth',
] as const;

/** A runbook section the router may start. */
export type RemediationSection = (typeof REMEDIATION_SECTIONS)[number];

/** Full document name for a section, `<Prefix>-<Section>`. */
export function documentName(prefix: string, section: string): string {
  return `${prefix}-${section}`;
}
