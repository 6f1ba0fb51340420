/**
 * The node registry: one SSM parameter per node, `/<prefix>/nodes/<name>`, holding a
 * {@link NodeRegistryEntry} as JSON. The stack writes it (lib/stemedb-node.ts); the alarm router
 * and expand-volume read it, so an alarm for an unknown node starts nothing and an unregistered
 * instance or volume is never expanded.
 */

/** One entry of the node registry (`/<prefix>/nodes/<name>`, JSON). */
export interface NodeRegistryEntry {
  readonly name: string;
  readonly instanceId: string;
  readonly availabilityZone: string;
  readonly volumeId: string;
  readonly dataMount: string;
}

/** A registry path prefix the Lambdas accept (NODE_PARAMETER_PREFIX): `/`, a path, `/`. */
export const NODE_REGISTRY_PREFIX_PATTERN = /^\/[A-Za-z0-9_.\-/]{1,900}\/$/;

/** `/<prefix>/nodes/`: the path under which every node's entry lives. */
export function nodeRegistryParameterPrefix(prefix: string): string {
  return `/${prefix}/nodes/`;
}

/** `/<prefix>/nodes/<name>`: the node registry entry the router reads. */
export function nodeRegistryParameterName(prefix: string, nodeName: string): string {
  return `${nodeRegistryParameterPrefix(prefix)}${nodeName}`;
}
