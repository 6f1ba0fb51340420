import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sns from 'aws-cdk-lib/aws-sns';

/**
 * Lets `grantee` publish to `topic` and, when the topic is KMS-encrypted, use its key only as SNS
 * does for a publisher: `kms:GenerateDataKey` and `kms:Decrypt` on that one key, with
 * `kms:ViaService` = `sns.<region>.amazonaws.com`. CDK's `topic.grantPublish` grants
 * `kms:GenerateDataKey*` and `kms:Decrypt` on the key with no condition, so the grantee could
 * decrypt anything under the stack key directly; this grant cannot.
 */
export function grantPublishThroughSns(topic: sns.ITopic, grantee: iam.IGrantable, sidPrefix: string): void {
  if (!/^[A-Za-z0-9]+$/.test(sidPrefix))
    throw new Error(
      `grantPublishThroughSns: sidPrefix ${JSON.stringify(sidPrefix)} must be letters and digits`,
    );
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: `${sidPrefix}PublishToTopic`,
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
    }),
  );
  const key = topic.masterKey;
  if (key === undefined) return;
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      sid: `${sidPrefix}TopicKeyThroughSns`,
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: [key.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `sns.${Stack.of(topic).region}.amazonaws.com` } },
    }),
  );
}
