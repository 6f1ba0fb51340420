import { type CfnResource, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { UPLOAD_MANIFEST_NAME, VERIFIED_MANIFEST_NAME } from '../contracts/wal-archive';
import { nagArn } from './nag-acknowledgements';

/**
 * What a node's instance policy needs of the archive: the bucket and its key (the archive's own
 * in the shared stack, or imported in a node stack), and how cdk-nag names the bucket's ARN in a
 * wildcard finding (to acknowledge exactly the node's own prefix).
 */
export interface NodeArchiveAccess {
  readonly bucket: s3.IBucket;
  readonly key: kms.IKey;
  readonly nagBucketArn: string;
}

export interface WalArchiveBucketProps {
  /** Key the archive is encrypted with (SSE-KMS). */
  readonly encryptionKey: kms.IKey;
  /** Days before archived WAL moves to Glacier Instant Retrieval. @default 30 */
  readonly transitionAfterDays?: number;
  /** Days before a noncurrent version is expired. @default 90 */
  readonly noncurrentExpireDays?: number;
  /** Object Lock retention in governance mode, in days; 0 turns Object Lock off. @default 0 */
  readonly objectLockDays?: number;
}

/** Key prefix of one node's WAL archive: `wal/<node>/`. */
export function walArchivePrefix(nodeName: string): string {
  return `wal/${nodeName}/`;
}

/** The keys written again on every run (`wal/<node>/_manifest/…`): the only ones not create-only. */
export const MANIFEST_KEY_PATTERNS = [`wal/*/${UPLOAD_MANIFEST_NAME}`, `wal/*/${VERIFIED_MANIFEST_NAME}`];

/**
 * Where WAL segments go before they may leave the disk (runbook §5C): SSE-KMS with the stack's
 * key, versioned, no public access, TLS only, access-logged, cheaper storage after a while and
 * optional Object Lock. Create-only by policy: a PutObject without `If-None-Match` is denied to
 * everyone on every key but the two manifests, so no one (a node included) can replace an
 * archived segment with a new version. Retained when the stack is deleted.
 */
export class WalArchiveBucket extends Construct {
  public readonly bucket: s3.Bucket;
  public readonly accessLogs: s3.Bucket;
  private readonly key: kms.IKey;

  constructor(scope: Construct, id: string, props: WalArchiveBucketProps) {
    super(scope, id);
    const transitionAfterDays = props.transitionAfterDays ?? 30;
    const noncurrentExpireDays = props.noncurrentExpireDays ?? 90;
    const objectLockDays = props.objectLockDays ?? 0;
    if (!Number.isInteger(transitionAfterDays) || transitionAfterDays < 30) {
      throw new Error(
        `WalArchiveBucket transitionAfterDays is ${transitionAfterDays}; expected a whole number of at least 30`,
      );
    }
    if (!Number.isInteger(noncurrentExpireDays) || noncurrentExpireDays < 1) {
      throw new Error(
        `WalArchiveBucket noncurrentExpireDays is ${noncurrentExpireDays}; expected a whole number of at least 1`,
      );
    }
    if (!Number.isInteger(objectLockDays) || objectLockDays < 0 || objectLockDays > 3650) {
      throw new Error(
        `WalArchiveBucket objectLockDays is ${objectLockDays}; expected a whole number from 0 (off) to 3650`,
      );
    }
    this.key = props.encryptionKey;

    // Server access logs can only be delivered to an SSE-S3 bucket.
    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      lifecycleRules: [{ expiration: Duration.days(365), noncurrentVersionExpiration: Duration.days(30) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.accessLogs).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'This is the access-log target of the WAL archive; logging a log bucket into itself would loop.',
    });

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.encryptionKey,
      bucketKeyEnabled: true,
      versioned: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: 'wal-archive/',
      objectLockEnabled: objectLockDays > 0 ? true : undefined,
      objectLockDefaultRetention:
        objectLockDays > 0 ? s3.ObjectLockRetention.governance(Duration.days(objectLockDays)) : undefined,
      lifecycleRules: [
        {
          id: 'colder-after-a-while',
          transitions: [
            {
              storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
              transitionAfter: Duration.days(transitionAfterDays),
            },
          ],
          noncurrentVersionExpiration: Duration.days(noncurrentExpireDays),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // AWS "Enforce conditional writes": s3:if-none-match is absent from a request without the
    // header. Not on the manifests: archive-wal.sh writes `_manifest/upload.json` again on every
    // run (plain PUT, same key: the verify and delete phases find the current run there), and
    // verify-archive writes `_manifest/verified.json` the same way (only it may, by the statement
    // below). A replaced upload manifest cannot make anything deletable: the verifier checks every
    // key it names in S3 itself. No multipart exemption (s3:ObjectCreationOperation): the archive
    // writes every segment with one PutObject (its SHA-256 is the whole object's), so
    // CreateMultipartUpload and CopyObject into the archive are refused too.
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ArchivedObjectsAreCreateOnly',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:PutObject'],
        notResources: MANIFEST_KEY_PATTERNS.map((k) => this.bucket.arnForObjects(k)),
        conditions: { Null: { 's3:if-none-match': 'true' } },
      }),
    );
  }

  /**
   * Lets a node put and read objects under `wal/<node>/` only, never delete: the statements for
   * the node's instance role.
   */
  nodeStatements(nodeName: string): iam.PolicyStatement[] {
    return walArchiveNodeStatements(this.nodeAccess(), nodeName);
  }

  /** The archive as a node's instance policy in this stack sees it. */
  nodeAccess(): NodeArchiveAccess {
    return {
      bucket: this.bucket,
      key: this.key,
      nagBucketArn: nagArn(this.bucket.node.defaultChild as CfnResource),
    };
  }

  /**
   * Denies `PutObject` on the verified-manifest keys to every principal but `verifier`: the
   * delete phase trusts that manifest, so a host must never be able to write it.
   */
  onlyVerifierWritesVerifiedManifests(verifier: iam.IRole, keyPattern: string): void {
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyTheVerifierWritesVerifiedManifests',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:PutObject'],
        resources: [this.bucket.arnForObjects(keyPattern)],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': verifier.roleArn } },
      }),
    );
  }

  /** KMS use through S3 only, for anyone who reads or writes the archive. */
  keyStatements(): iam.PolicyStatement[] {
    return walArchiveKeyStatements(this.key);
  }
}

/** KMS use of the archive's key through S3 only. */
export function walArchiveKeyStatements(key: kms.IKey): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'UseArchiveKeyThroughS3',
      actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
      resources: [key.keyArn],
      conditions: { StringLike: { 'kms:ViaService': 's3.*.amazonaws.com' } },
    }),
  ];
}

/**
 * Lets a node put and read objects under `wal/<node>/` only, never delete: the statements for
 * the node's instance role.
 */
export function walArchiveNodeStatements(access: NodeArchiveAccess, nodeName: string): iam.PolicyStatement[] {
  const prefix = walArchivePrefix(nodeName);
  return [
    new iam.PolicyStatement({
      sid: 'PutAndReadOwnWalArchive',
      actions: ['s3:PutObject', 's3:GetObject', 's3:GetObjectAttributes'],
      resources: [access.bucket.arnForObjects(`${prefix}*`)],
    }),
    new iam.PolicyStatement({
      sid: 'ListOwnWalArchive',
      actions: ['s3:ListBucket'],
      resources: [access.bucket.bucketArn],
      conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } },
    }),
    ...walArchiveKeyStatements(access.key),
  ];
}
