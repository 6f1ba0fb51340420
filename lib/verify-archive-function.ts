import { type CfnResource, Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { VERIFIED_MANIFEST_NAME } from '../contracts/wal-archive';
import { acknowledgeWildcard, nagArn } from './nag-acknowledgements';
import { RemediationFunction } from './remediation-function';
import type { WalArchiveBucket } from './wal-archive-bucket';

export interface VerifyArchiveFunctionProps {
  /** Name prefix (config `prefix`): the function is `<prefix>-verify-archive`. */
  readonly prefix: string;
  /** The WAL archive it verifies and writes verified manifests to. */
  readonly archive: WalArchiveBucket;
}

/** Where verify-archive writes what it verified: `wal/<node>/_manifest/verified.json`. */
const VERIFIED_MANIFEST_KEYS = `wal/*/${VERIFIED_MANIFEST_NAME}`;

/**
 * Runbook §5C's `verify-archive` Lambda: verifies every archived WAL segment in S3 (size and
 * SHA-256), independent of the host. It reads any node's archive and writes verified manifests;
 * the bucket refuses a verified manifest from anyone else, so a host can never vouch for its own
 * uploads.
 */
export class VerifyArchiveFunction extends RemediationFunction {
  constructor(scope: Construct, id: string, props: VerifyArchiveFunctionProps) {
    super(scope, id, {
      entryName: 'verify-archive',
      prefix: props.prefix,
      description:
        'Runbook §5C: verifies every archived WAL segment in S3 (size and SHA-256), independent of the host',
      timeout: Duration.minutes(5),
      memorySize: 512,
    });
    this.grantVerification(props.archive);
  }

  private grantVerification(archive: WalArchiveBucket): void {
    const role = this.role;
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadArchivedWal',
        actions: ['s3:GetObject'],
        resources: [archive.bucket.arnForObjects('wal/*')],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        // Without ListBucket a missing key answers 403 instead of 404.
        sid: 'ListArchivedWal',
        actions: ['s3:ListBucket'],
        resources: [archive.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': ['wal/*'] } },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteVerifiedManifests',
        actions: ['s3:PutObject'],
        resources: [archive.bucket.arnForObjects(VERIFIED_MANIFEST_KEYS)],
      }),
    );
    for (const s of archive.keyStatements()) role.addToPolicy(s);
    archive.onlyVerifierWritesVerifiedManifests(role, VERIFIED_MANIFEST_KEYS);
    const bucketArn = nagArn(archive.bucket.node.defaultChild as CfnResource);
    acknowledgeWildcard(
      role,
      `Resource::${bucketArn}/wal/*`,
      "The verifier reads any node's archived segments and manifests; keys are only known at run time.",
    );
    acknowledgeWildcard(
      role,
      `Resource::${bucketArn}/${VERIFIED_MANIFEST_KEYS}`,
      'One verified manifest per node prefix; the bucket policy denies this key to every other principal.',
    );
  }
}
