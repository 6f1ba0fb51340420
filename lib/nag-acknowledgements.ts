import { CfnResource, Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * How cdk-nag names a resource's ARN in an IAM5 finding: `<LogicalId.Arn>`.
 * Use it to acknowledge exactly one wildcard (`<Bucket.Arn>/wal/db-1/*`), never all of them.
 */
export function nagArn(resource: CfnResource): string {
  return `<${Stack.of(resource).getLogicalId(resource)}.Arn>`;
}

/** Acknowledges one IAM5 wildcard finding (`Resource::…` or `Action::…`) on `scope`, with the reason. */
export function acknowledgeWildcard(scope: IConstruct, finding: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
}

/** Construct ID CDK gives the AwsCustomResource singleton provider function. */
export const AWS_CUSTOM_RESOURCE_PROVIDER_ID = 'AWS679f53fac002430cb0da5b7982bd2287';

/**
 * The AwsCustomResource provider is a stack-wide singleton that CDK builds with the basic execution
 * policy: acknowledges that on the provider itself, and marks its CDK-made redundant role
 * dependency for cfn-lint. Call after creating an AwsCustomResource; a no-op before there is one.
 */
export function acknowledgeCustomResourceProvider(stack: Stack): void {
  const provider = stack.node.tryFindChild(AWS_CUSTOM_RESOURCE_PROVIDER_ID);
  if (provider === undefined) return;
  Validations.of(provider).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    reason:
      'The AwsCustomResource provider (CDK-owned singleton) uses the basic execution policy only to write its own logs; every AWS permission it has besides is a policy of one custom resource, scoped to that resource (an adopted volume, the AMP workspace).',
  });
  // CDK emits both a DependsOn and a GetAtt on the provider's role; cfn-lint flags the redundancy (W3005).
  const fn = provider.node.defaultChild;
  if (fn instanceof CfnResource) fn.addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
}
