/**
 * Where the permission tests resolve the synthesized template (test/support/resolved-template.ts)
 * and evaluate requests with the real IAM evaluator: one account, region and stack name, and an
 * Automation execution ID of the form SSM gives, for the ARNs the requests name.
 */

/** The account, region and stack the template is resolved for. */
export const TARGET = { account: '111122223333', region: 'eu-west-1', stackName: 'StemeDB-Disk' } as const;

/** An Automation execution ID (a UUID, as StartAutomationExecution returns). */
export const EXECUTION_ID = '0f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b';
