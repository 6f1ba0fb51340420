import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { PRE_EXPANSION_PURPOSE, SNAPSHOT_PURPOSE_TAG_KEY } from '../contracts/expansion';
import { acknowledgeWildcard } from './nag-acknowledgements';
import { DEPLOYMENT_TAG_KEY, MANAGED_TAG_KEY, MANAGED_TAG_VALUE, managedByDeployment } from './tags';

/**
 * What the pre-expansion snapshot retention of expand-volume (lambda/shared/snapshot-retention.ts)
 * needs on its role: list snapshots (DescribeSnapshots has no resource-level permissions; it only
 * reads), and delete only snapshots that carry this deployment's managed and deployment tags AND
 * the pre-expansion purpose tag: not another deployment's, not DLM's daily ones (which have no
 * purpose tag), not anyone else's.
 */
export function grantPreExpansionSnapshotRetention(role: iam.Role, prefix: string): void {
  const snapshots = Stack.of(role).formatArn({
    service: 'ec2',
    resource: 'snapshot',
    resourceName: 'snap-*',
    account: '',
  });
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'ListSnapshots',
      actions: ['ec2:DescribeSnapshots'],
      resources: ['*'],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'DeleteOwnPreExpansionSnapshotsOnly',
      actions: ['ec2:DeleteSnapshot'],
      resources: [snapshots],
      conditions: {
        StringEquals: {
          ...managedByDeployment('ResourceTag', prefix),
          [`aws:ResourceTag/${SNAPSHOT_PURPOSE_TAG_KEY}`]: PRE_EXPANSION_PURPOSE,
        },
      },
    }),
  );
  acknowledgeWildcard(
    role,
    'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/snap-*',
    `Snapshot IDs are only known at run time; DeleteSnapshot is limited by condition to snapshots tagged ${MANAGED_TAG_KEY}=${MANAGED_TAG_VALUE}, ${DEPLOYMENT_TAG_KEY}=${prefix} and ${SNAPSHOT_PURPOSE_TAG_KEY}=${PRE_EXPANSION_PURPOSE} (the ones expand-volume takes).`,
  );
}
