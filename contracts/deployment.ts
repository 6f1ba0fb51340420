/**
 * What names a deployment and its nodes: the prefix of every document, alarm, function and
 * parameter name, and the node names (lib/config.ts validates both; the Lambdas check what they
 * are given against the same patterns).
 */

/** The prefix when the configuration gives none. */
export const DEFAULT_PREFIX = 'StemeDB';

/** A deployment prefix: a letter and up to 19 letters and digits. */
export const PREFIX_PATTERN = /^[A-Za-z][A-Za-z0-9]{0,19}$/;

/** A document's name after `<prefix>-` (or `<prefix>-Host-`): PascalCase, up to 64 letters and digits. */
export const DOCUMENT_NAME_PATTERN = /^[A-Z][A-Za-z0-9]{0,63}$/;

/** A node name: 2 to 32 lower-case letters, digits and '-', starting with a letter, not ending with '-'. */
export const NODE_NAME_PATTERN = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
