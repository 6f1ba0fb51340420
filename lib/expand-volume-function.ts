import { Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import type { ExpansionConfig } from '../contracts/expansion';
import { acknowledgeWildcard } from './nag-acknowledgements';
import { readNodeRegistryStatement } from './node-registry-statement';
import { RemediationFunction } from './remediation-function';
import { grantPreExpansionSnapshotRetention } from './snapshot-retention-grant';
import { DEPLOYMENT_TAG_KEY, MANAGED_TAG_KEY, managedByDeployment, NODE_TAG_KEY } from './tags';

export interface ExpandVolumeFunctionProps {
  /** Name prefix (config `prefix`): the function is `<prefix>-expand-volume`, the deployment tag's value. */
  readonly prefix: string;
  /** The sizing policy and snapshot setting (config `expansion`). */
  readonly expansion: ExpansionConfig;
  /** Free % the warning alarm fires below (config `thresholds.warningFreePercent`): the "growth not yet used" guard. */
  readonly warningFreePercent: number;
}

/**
 * Runbook §5A's `expand-volume` Lambda: grows a managed EBS data volume (snapshot first) or says
 * why not. ModifyVolume and CreateSnapshot only on volumes tagged managed AND of this deployment
 * (the managed tag alone is the same in every deployment of the account); the node registry, to
 * refuse an instance that is not a registered node; describes are account-wide reads; deleting
 * only its own older pre-expansion snapshots (lib/snapshot-retention-grant.ts).
 */
export class ExpandVolumeFunction extends RemediationFunction {
  constructor(scope: Construct, id: string, props: ExpandVolumeFunctionProps) {
    const { prefix, expansion } = props;
    for (const key of ['growPercent', 'minGrowGiB', 'maxSizeGiB'] as const) {
      if (!Number.isFinite(expansion[key]) || expansion[key] <= 0)
        throw new Error(
          `ExpandVolumeFunction expansion.${key} is ${expansion[key]}; expected a number above 0`,
        );
    }
    if (!(props.warningFreePercent > 0 && props.warningFreePercent < 100))
      throw new Error(
        `ExpandVolumeFunction warningFreePercent is ${props.warningFreePercent}; expected a percentage between 0 and 100`,
      );
    super(scope, id, {
      entryName: 'expand-volume',
      prefix,
      description: 'Runbook §5A: grows a managed EBS data volume (snapshot first), or says why not',
      timeout: Duration.minutes(1),
      environment: {
        GROW_PERCENT: String(expansion.growPercent),
        MIN_GROW_GIB: String(expansion.minGrowGiB),
        MAX_SIZE_GIB: String(expansion.maxSizeGiB),
        SNAPSHOT_BEFORE_EXPAND: String(expansion.snapshotBeforeExpand),
        SNAPSHOTS_KEPT: String(expansion.snapshotsKept),
        SNAPSHOTS_DELETE_AFTER_DAYS: String(expansion.snapshotsDeleteAfterDays),
        WARN_WITHIN_PERCENT: String(expansion.warnWithinPercent),
        WARNING_FREE_PERCENT: String(props.warningFreePercent),
        MANAGED_TAG_KEY,
        NODE_TAG_KEY,
        DEPLOYMENT_TAG_KEY,
        DEPLOYMENT: prefix,
        NODE_PARAMETER_PREFIX: `/${prefix}/nodes/`,
      },
    });
    this.grantExpansion(prefix);
    grantPreExpansionSnapshotRetention(this.role, prefix);
  }

  private grantExpansion(prefix: string): void {
    const stack = Stack.of(this);
    const role = this.role;
    const volumes = stack.formatArn({ service: 'ec2', resource: 'volume', resourceName: '*' });
    const snapshots = stack.formatArn({
      service: 'ec2',
      resource: 'snapshot',
      resourceName: '*',
      account: '',
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeVolumesAndModifications',
        actions: ['ec2:DescribeVolumes', 'ec2:DescribeVolumesModifications'],
        resources: ['*'],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ModifyAndSnapshotManagedVolumesOnly',
        actions: ['ec2:ModifyVolume', 'ec2:CreateSnapshot'],
        resources: [volumes],
        conditions: {
          StringEquals: managedByDeployment('ResourceTag', prefix),
        },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CreateManagedSnapshotsOnly',
        actions: ['ec2:CreateSnapshot'],
        resources: [snapshots],
        conditions: {
          StringEquals: managedByDeployment('RequestTag', prefix),
        },
      }),
    );
    role.addToPolicy(readNodeRegistryStatement(stack, prefix));
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'TagSnapshotsAtCreation',
        actions: ['ec2:CreateTags'],
        resources: [snapshots],
        conditions: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshot' } },
      }),
    );
    acknowledgeWildcard(
      role,
      'Resource::*',
      'EC2 Describe* actions do not support resource-level permissions; they only read.',
    );
    acknowledgeWildcard(
      role,
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*',
      `Volume IDs are only known at run time; ModifyVolume and CreateSnapshot are limited by the conditions aws:ResourceTag/${MANAGED_TAG_KEY}=true and aws:ResourceTag/${DEPLOYMENT_TAG_KEY}=${prefix}.`,
    );
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${prefix}/nodes/*`,
      'The node registry: one parameter per node, named by the node; expand-volume reads only this prefix, to refuse an instance that is not a registered node.',
    );
    acknowledgeWildcard(
      role,
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*',
      'A new snapshot has no ID before it exists; creation requires the managed tag in the request and tagging is allowed only as part of CreateSnapshot.',
    );
  }
}
