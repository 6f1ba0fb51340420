/**
 * Tag keys every later IAM statement is scoped by. A managed data volume carries
 * `stemedb:managed=true` and `stemedb:node=<name>`; so must each node's instance.
 */
export const MANAGED_TAG_KEY = 'stemedb:managed';
export const MANAGED_TAG_VALUE = 'true';
export const NODE_TAG_KEY = 'stemedb:node';
