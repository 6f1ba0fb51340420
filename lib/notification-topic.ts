import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';

export interface NotificationTopicProps {
  /** Key the topic is encrypted with. */
  readonly encryptionKey: kms.IKey;
  /** Email addresses subscribed to every notification. @default none */
  readonly emails?: readonly string[];
  /** Topic name prefix. @default 'StemeDB' */
  readonly prefix?: string;
}

/**
 * Where alarms and automations report: a KMS-encrypted SNS topic that only accepts TLS,
 * with optional email subscriptions. CloudWatch alarms in this account may publish to it.
 */
export class NotificationTopic extends Construct {
  public readonly topic: sns.Topic;

  constructor(scope: Construct, id: string, props: NotificationTopicProps) {
    super(scope, id);
    const emails = props.emails ?? [];
    for (const [i, email] of emails.entries()) {
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
        throw new Error(
          `NotificationTopic emails[${i}] is ${JSON.stringify(email)}; expected an email address`,
        );
      }
    }
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    this.topic = new sns.Topic(this, 'Topic', {
      topicName: `${prefix}-disk-notifications`,
      displayName: `${prefix} disk alarms and automation results`,
      masterKey: props.encryptionKey,
      enforceSSL: true,
    });
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsOfThisAccount',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': this.topic.env.account } },
      }),
    );
    for (const email of emails) this.topic.addSubscription(new subs.EmailSubscription(email));
  }
}
