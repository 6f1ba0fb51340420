import type { Stack } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import { acknowledgeWildcard } from './nag-acknowledgements';

/**
 * The resources `ssm:StartAutomationExecution` of `documentNames` is authorized on, in every form
 * AWS checks. Evidence:
 * - the Service Authorization Reference lists three resource types for the action:
 *   `document/<name>` (required), `automation-execution/<id>` (required) and
 *   `automation-definition/<name>:<VersionId>` (optional);
 * - AccessDenied messages reported publicly name the definition with a version NUMBER, e.g.
 *   `... is not authorized to perform: ssm:StartAutomationExecution on resource:
 *   arn:aws:ssm:ap-southeast-1::automation-definition/AWS-DisablePublicAccessForSecurityGroup:1`
 *   (aws-solutions/automated-security-response-on-aws issues 26 and 29), so `:$DEFAULT` alone is
 *   not what AWS compares against;
 * - the Systems Manager user guide ("Setting up identity based policies examples", example 1)
 *   grants StartAutomationExecution on `document/<name>` and `automation-execution/*`.
 * Hence: the document, every version of its definition (`:*` matches `:1`, `:$DEFAULT` and
 * `:$LATEST`), and the execution the call creates (IDs are only known at run time). Every resource
 * of a request must be allowed, so `automation-execution/*` does not let a foreign document start.
 */
export function startAutomationResources(stack: Stack, documentNames: readonly string[]): string[] {
  return [
    ...documentNames.map((name) =>
      stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name }),
    ),
    ...documentNames.map((name) =>
      stack.formatArn({ service: 'ssm', resource: 'automation-definition', resourceName: `${name}:*` }),
    ),
    stack.formatArn({ service: 'ssm', resource: 'automation-execution', resourceName: '*' }),
  ];
}

/** The `automation-definition/<name>:*` wildcard of {@link startAutomationResources}, per document. */
export function acknowledgeStartAutomationVersions(role: iam.IRole, documentNames: readonly string[]): void {
  for (const name of documentNames) {
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-definition/${name}:*`,
      `Every version of this stack's ${name} definition: AWS authorizes StartAutomationExecution on the resolved version (e.g. :1), not on :$DEFAULT.`,
    );
  }
}
