/**
 * Automation document names: every runbook section is an Automation document `<prefix>-<Section>`.
 */

import { ROUTER_STARTABLE_AUTOMATIONS, type RouterStartableAutomation } from './sections';

/**
 * The runbook sections this stack deploys as Automation documents (`<prefix>-<Section>`) that the
 * router may start: the registry's `ROUTER_STARTABLE_AUTOMATIONS` (contracts/sections.ts), in
 * deployment order.
 */
export const REMEDIATION_SECTIONS: readonly RouterStartableAutomation[] = ROUTER_STARTABLE_AUTOMATIONS;

/** A runbook section the router may start. */
export type RemediationSection = RouterStartableAutomation;

/** Full document name for a section, `<Prefix>-<Section>`. */
export function documentName(prefix: string, section: string): string {
  return `${prefix}-${section}`;
}
