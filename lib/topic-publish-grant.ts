import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sns from 'aws-cdk-lib/aws-sns';

/**
 * What a publisher to `topic` needs: `sns:Publish` on the topic and, when the topic is
 * KMS-encrypted, its key only as SNS uses it for a publisher (`kms:GenerateDataKey` and
 * `kms:Decrypt` on that one key, with `kms:ViaService` = `sns.<region>.amazonaws.com`). CDK's
 * `topic.grantPublish` grants `kms:GenerateDataKey*` and `kms:Decrypt` on the key with no
 * condition, so the grantee could decrypt anything under the key directly; these statements cannot.
 */
export function topicPublishStatements(
  topic: sns.ITopic,
  sids: { readonly publish: string; readonly key: string },
): iam.PolicyStatement[] {
  const statements = [
    new iam.PolicyStatement({ sid: sids.publish, actions: ['sns:Publish'], resources: [topic.topicArn] }),
  ];
  const key = topic.masterKey;
  if (key !== undefined)
    statements.push(
      new iam.PolicyStatement({
        sid: sids.key,
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `sns.${Stack.of(topic).region}.amazonaws.com` } },
      }),
    );
  return statements;
}

/** Lets `grantee` publish to the notification `topic` ({@link topicPublishStatements}). */
export function grantPublishThroughSns(topic: sns.ITopic, grantee: iam.IGrantable): void {
  for (const statement of topicPublishStatements(topic, {
    publish: 'NotificationsPublishToTopic',
    key: 'NotificationsTopicKeyThroughSns',
  }))
    grantee.grantPrincipal.addToPrincipalPolicy(statement);
}
