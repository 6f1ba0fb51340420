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
