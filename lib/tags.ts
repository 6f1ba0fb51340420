/**
 * Tag keys every later IAM statement is scoped by. A managed data volume carries
 * `stemedb:managed=true`, `stemedb:node=<name>` and `stemedb:deployment=<prefix>`; so must each
 * node's instance (the platform team tags it). The managed tag is the same in every deployment of
 * the account; the deployment tag is what keeps one deployment's automation off another's volumes
 * and instances.
 */
export const MANAGED_TAG_KEY = 'stemedb:managed';
export const MANAGED_TAG_VALUE = 'true';
export const NODE_TAG_KEY = 'stemedb:node';
/** Value: the deployment's prefix (`StemeDB` by default). */
export const DEPLOYMENT_TAG_KEY = 'stemedb:deployment';

/**
 * The IAM condition keys that hold a resource to this deployment's managed ones: the managed tag
 * (`managed`, default `true`) and the deployment tag (`prefix`), on the resource a call acts on
 * (`ResourceTag`) or in the tags a create call sets (`RequestTag`). Spread into a `StringEquals`.
 */
export function managedByDeployment(
  where: 'ResourceTag' | 'RequestTag',
  prefix: string,
  managed: string | readonly string[] = MANAGED_TAG_VALUE,
): Record<string, string | readonly string[]> {
  return { [`aws:${where}/${MANAGED_TAG_KEY}`]: managed, [`aws:${where}/${DEPLOYMENT_TAG_KEY}`]: prefix };
}
