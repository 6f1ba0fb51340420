import { type CfnResource, Stack, Validations } from 'aws-cdk-lib';
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

/** SNS `grantPublish` on a KMS-encrypted topic grants `kms:GenerateDataKey*` on its key. */
export function acknowledgeTopicKeyUse(scope: IConstruct): void {
  acknowledgeWildcard(
    scope,
    'Action::kms:GenerateDataKey*',
    'Publishing to the KMS-encrypted notification topic needs data keys of the stack key (CDK grantPublish); the resource is that one key.',
  );
}
