import { CfnOutput, Fn } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import type { NodeArchiveAccess } from './wal-archive-bucket';

/** The export names, `<prefix>-Disk-<what>`: fixed, so they never change when nodes are added. */
export function sharedExportNames(prefix: string): {
  readonly keyArn: string;
  readonly topicArn: string;
  readonly archiveBucketArn: string;
} {
  return {
    keyArn: `${prefix}-Disk-KeyArn`,
    topicArn: `${prefix}-Disk-NotificationTopicArn`,
    archiveBucketArn: `${prefix}-Disk-WalArchiveBucketArn`,
  };
}

export interface SharedStackExportsProps {
  /** Name prefix of the exports. @default 'StemeDB' */
  readonly prefix?: string;
  /** The key created data volumes (and the archive) are encrypted with. */
  readonly key: kms.IKey;
  /** The notification topic the node alarms notify. */
  readonly topic: sns.ITopic;
  /** The WAL archive bucket the node instance policies are scoped to. */
  readonly archiveBucket: s3.IBucket;
}

/**
 * The three values node stacks take from the shared stack, as CloudFormation exports with fixed
 * names (`Fn::ImportValue` in the node stacks: about 50 bytes per use, and CloudFormation refuses to
 * delete or change an export while a node stack imports it). The same three for every node stack
 * and every node, so adding a node or a shard never changes the shared stack's exports.
 */
export class SharedStackExports extends Construct {
  constructor(scope: Construct, id: string, props: SharedStackExportsProps) {
    super(scope, id);
    const names = sharedExportNames(props.prefix ?? DEFAULT_PREFIX);
    new CfnOutput(this, 'KeyArn', { value: props.key.keyArn, exportName: names.keyArn });
    new CfnOutput(this, 'TopicArn', { value: props.topic.topicArn, exportName: names.topicArn });
    new CfnOutput(this, 'WalArchiveBucketArn', {
      value: props.archiveBucket.bucketArn,
      exportName: names.archiveBucketArn,
    });
  }
}

/** What a node stack imports from the shared stack (built in the node stack). */
export interface ImportedSharedResources {
  readonly key: kms.IKey;
  readonly topic: sns.ITopic;
  readonly archive: NodeArchiveAccess;
}

/** The shared stack's key, topic and archive in a node stack, from the fixed exports. */
export function importSharedResources(scope: Construct, prefix: string): ImportedSharedResources {
  const names = sharedExportNames(prefix);
  const key = kms.Key.fromKeyArn(scope, 'SharedKey', Fn.importValue(names.keyArn));
  return {
    key,
    topic: sns.Topic.fromTopicArn(scope, 'SharedTopic', Fn.importValue(names.topicArn)),
    archive: {
      bucket: s3.Bucket.fromBucketArn(scope, 'SharedWalArchive', Fn.importValue(names.archiveBucketArn)),
      key,
      // cdk-nag names an imported value by its export name.
      nagBucketArn: names.archiveBucketArn,
    },
  };
}
