import { Validations } from 'aws-cdk-lib';
import * as dlm from 'aws-cdk-lib/aws-dlm';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import { DEPLOYMENT_TAG_KEY } from './tags';

export interface DataVolumeSnapshotPolicyProps {
  /** How many daily snapshots to keep. @default 7 */
  readonly retainCount?: number;
  /** Time of day the snapshot starts, HH:MM in UTC. @default '03:00' */
  readonly timeUtc?: string;
  /** The deployment's prefix: the description, and the `stemedb:deployment` value targeted. @default 'StemeDB' */
  readonly prefix?: string;
}

/**
 * Daily snapshots of every volume of this deployment (tagged `stemedb:deployment=<prefix>`), by a
 * Data Lifecycle Manager policy: the runbook asks for a backup before every cleanup, and this is
 * the one that always exists. DLM targets a volume that carries ANY of the target tags, so the
 * policy names the deployment tag alone: with `stemedb:managed=true` (the same in every deployment)
 * as well, every deployment's policy would snapshot every other deployment's volumes too.
 */
export class DataVolumeSnapshotPolicy extends Construct {
  public readonly policy: dlm.CfnLifecyclePolicy;

  constructor(scope: Construct, id: string, props: DataVolumeSnapshotPolicyProps = {}) {
    super(scope, id);
    const retainCount = props.retainCount ?? 7;
    const timeUtc = props.timeUtc ?? '03:00';
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    if (!Number.isInteger(retainCount) || retainCount < 1 || retainCount > 1000) {
      throw new Error(
        `DataVolumeSnapshotPolicy retainCount is ${retainCount}; expected a whole number from 1 to 1000`,
      );
    }
    if (!/^(?:[01]\d|2[0-3]):[0-5]\d$/.test(timeUtc)) {
      throw new Error(
        `DataVolumeSnapshotPolicy timeUtc is ${JSON.stringify(timeUtc)}; expected HH:MM in UTC`,
      );
    }
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('dlm.amazonaws.com'),
      description: `${prefix}: Data Lifecycle Manager snapshots of managed data volumes`,
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSDataLifecycleManagerServiceRole'),
      ],
    });
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole]',
      reason:
        'AWS maintains this service-role policy for DLM; its snapshot actions are already scoped by the policy target tags.',
    });
    this.policy = new dlm.CfnLifecyclePolicy(this, 'Policy', {
      description: `${prefix} daily data volume snapshots`,
      state: 'ENABLED',
      executionRoleArn: role.roleArn,
      policyDetails: {
        policyType: 'EBS_SNAPSHOT_MANAGEMENT',
        resourceTypes: ['VOLUME'],
        targetTags: [{ key: DEPLOYMENT_TAG_KEY, value: prefix }],
        schedules: [
          {
            name: 'daily',
            copyTags: true,
            tagsToAdd: [{ key: 'stemedb:snapshot', value: 'daily' }],
            createRule: { interval: 24, intervalUnit: 'HOURS', times: [timeUtc] },
            retainRule: { count: retainCount },
          },
        ],
      },
    });
  }
}
