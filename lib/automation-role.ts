import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';

export interface AutomationRoleProps {
  /** Role name prefix: the role is `<prefix>-disk-automation`. @default 'StemeDB' */
  readonly prefix?: string;
}

/**
 * The role the runbook's Automation documents run as (`AutomationAssumeRole`). Trusted only by
 * SSM Automation executions of this account and region; whoever passes it may pass it only to SSM.
 * lib/runbook-documents.ts grants it what the documents' steps do, next to where they are built.
 */
export class AutomationRole extends Construct {
  public readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: AutomationRoleProps = {}) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', {
      roleName: `${prefix}-disk-automation-${stack.region}`,
      description: `${prefix} runbook Automation documents (AutomationAssumeRole)`,
      assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com').withConditions({
        StringEquals: { 'aws:SourceAccount': stack.account },
        ArnLike: {
          'aws:SourceArn': stack.formatArn({
            service: 'ssm',
            resource: 'automation-execution',
            resourceName: '*',
          }),
        },
      }),
    });
  }

  /** `iam:PassRole` for this role, only to SSM: for the router, and for documents that start others. */
  grantPassToSsm(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(passRoleToSsmStatement(this.role));
  }
}

/**
 * `iam:PassRole` of `role` and no other, only to SSM (`iam:PassedToService`): what whoever starts
 * an Automation that runs as `role` needs (the router, documents that start others, operators).
 */
export function passRoleToSsmStatement(role: iam.IRole): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'PassAutomationRoleToSsmOnly',
    actions: ['iam:PassRole'],
    resources: [role.roleArn],
    conditions: { StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } },
  });
}
