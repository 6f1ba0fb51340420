import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';

export interface StemeDbKeyProps {
  /** Prefix of the key alias (`alias/<prefix>-data`). @default 'StemeDB' */
  readonly prefix?: string;
  /** Days KMS waits before deleting the key if it is ever scheduled for deletion. @default 30 */
  readonly pendingWindowDays?: number;
  /**
   * Grant EC2 (in this account, through the key's policy) the use that encrypting a volume
   * needs, once, for volumes created in other stacks: they import the key, and CDK cannot extend
   * an imported key's policy. A volume created in this stack grants it itself. @default false
   */
  readonly grantVolumeEncryption?: boolean;
}

/**
 * The customer-managed key for data volumes, snapshots, the notification topic and the WAL
 * archive. Rotated yearly and retained: losing it would make every volume and archive unreadable.
 */
export class StemeDbKey extends Construct {
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: StemeDbKeyProps = {}) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const pendingWindowDays = props.pendingWindowDays ?? 30;
    if (!Number.isInteger(pendingWindowDays) || pendingWindowDays < 7 || pendingWindowDays > 30) {
      throw new Error(
        `StemeDbKey pendingWindowDays is ${pendingWindowDays}; expected a whole number from 7 to 30`,
      );
    }
    this.key = new kms.Key(this, 'Key', {
      alias: `alias/${prefix}-data`,
      description: `${prefix} data volumes, snapshots, notifications and WAL archive`,
      enableKeyRotation: true,
      pendingWindow: Duration.days(pendingWindowDays),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // CloudWatch alarms publish to the encrypted topic: the service needs the key for that.
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToUseTheTopicKey',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
    if (props.grantVolumeEncryption !== true) return;
    // What ec2.Volume grants the key for the volumes it encrypts, granted here once: volumes of
    // node stacks use the key imported (CDK cannot edit an imported key's policy), and the shared
    // stack may hold no created volume at all. The same statement as the Volume's, so a shared
    // stack with created volumes renders it once.
    const stack = Stack.of(this);
    this.key.grant(
      new kms.ViaServicePrincipal(
        `ec2.${stack.region}.amazonaws.com`,
        new iam.AccountRootPrincipal(),
      ).withConditions({
        StringEquals: { 'kms:CallerAccount': stack.account },
      }),
      'kms:DescribeKey',
      'kms:GenerateDataKeyWithoutPlainText',
    );
  }
}
