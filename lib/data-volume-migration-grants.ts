import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { acknowledgeWildcard } from './nag-acknowledgements';
import { readNodeRegistryStatement } from './node-registry-statement';
import {
  DEPLOYMENT_TAG_KEY,
  MANAGED_TAG_KEY,
  MANAGED_TAG_VALUE,
  managedByDeployment,
  NODE_TAG_KEY,
} from './tags';

/** The tag AddDataVolume gives a new volume: the volume it replaces. */
const REPLACES_TAG_KEY = 'stemedb:replaces';

export interface DataVolumeMigrationGrantProps {
  /** The deployment's prefix: the `stemedb:deployment` tag value every statement requires. */
  readonly prefix: string;
  /** The key new data volumes are encrypted with (the stack key). */
  readonly volumeKey: kms.IKey;
}

/**
 * Runbook §5B for the automation role: AddDataVolume creates, tags and attaches a volume and
 * marks volumes replaced or migration-failed; RetireDataVolume tags and detaches a replaced one.
 * Creation only with the managed, deployment, node and replaces tags in the request, encrypted;
 * tagging at creation only as part of CreateVolume; attaching only managed volumes to managed
 * instances of this deployment; re-tagging only this deployment's managed (or migration-failed)
 * volumes, only the migration's own keys, only to `replaced`, `migration-failed` or back to
 * `true` (a resumed migration); detaching only volumes marked replaced, from managed
 * instances. KMS: what EBS uses on the caller's behalf for a
 * volume encrypted with the stack key (EBS user guide, "Requirements for Amazon EBS
 * encryption": CreateGrant, Decrypt, DescribeKey, GenerateDataKeyWithoutPlainText, ReEncrypt),
 * only through EC2, grants only for AWS resources.
 */
export function grantDataVolumeMigration(role: iam.Role, props: DataVolumeMigrationGrantProps): void {
  const { prefix, volumeKey: key } = props;
  const stack = Stack.of(role);
  const volumes = stack.formatArn({ service: 'ec2', resource: 'volume', resourceName: '*' });
  const instances = stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
  const ofThisDeployment = (managed: string) => managedByDeployment('ResourceTag', prefix, managed);
  const viaEc2 = { 'kms:ViaService': `ec2.${stack.region}.amazonaws.com` };
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'MigrationReadsInstancesAndVolumes',
      actions: ['ec2:DescribeInstances', 'ec2:DescribeVolumes'],
      resources: ['*'],
    }),
  );
  role.addToPolicy(readNodeRegistryStatement(stack, prefix, 'MigrationReadsNodeRegistry'));
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'CreateManagedEncryptedVolumesOnly',
      actions: ['ec2:CreateVolume'],
      resources: [volumes],
      conditions: {
        StringEquals: managedByDeployment('RequestTag', prefix),
        Null: {
          [`aws:RequestTag/${NODE_TAG_KEY}`]: 'false',
          [`aws:RequestTag/${REPLACES_TAG_KEY}`]: 'false',
        },
        Bool: { 'ec2:Encrypted': 'true' },
      },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'TagVolumesAtCreation',
      actions: ['ec2:CreateTags'],
      resources: [volumes],
      conditions: { StringEquals: { 'ec2:CreateAction': 'CreateVolume' } },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'AttachManagedVolumesToManagedInstancesOnly',
      actions: ['ec2:AttachVolume'],
      resources: [instances, volumes],
      conditions: { StringEquals: ofThisDeployment(MANAGED_TAG_VALUE) },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'MarkManagedVolumesReplacedOrFailed',
      actions: ['ec2:CreateTags'],
      resources: [volumes],
      conditions: {
        StringEquals: {
          ...managedByDeployment('ResourceTag', prefix, [MANAGED_TAG_VALUE, 'migration-failed']),
          [`aws:RequestTag/${MANAGED_TAG_KEY}`]: [MANAGED_TAG_VALUE, 'replaced', 'migration-failed'],
        },
        'ForAllValues:StringEquals': {
          'aws:TagKeys': [
            MANAGED_TAG_KEY,
            'stemedb:replaced-by',
            'stemedb:replaced-at',
            'stemedb:migration-result',
          ],
        },
      },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'MarkReplacedVolumesRetired',
      actions: ['ec2:CreateTags'],
      resources: [volumes],
      conditions: {
        StringEquals: ofThisDeployment('replaced'),
        'ForAllValues:StringEquals': { 'aws:TagKeys': ['stemedb:retired-at'] },
      },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'DetachReplacedVolumesOnly',
      actions: ['ec2:DetachVolume'],
      resources: [volumes],
      conditions: { StringEquals: ofThisDeployment('replaced') },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'DetachFromManagedInstancesOnly',
      actions: ['ec2:DetachVolume'],
      resources: [instances],
      conditions: { StringEquals: ofThisDeployment(MANAGED_TAG_VALUE) },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'EbsUsesTheVolumeKeyThroughEc2',
      actions: [
        'kms:Decrypt',
        'kms:DescribeKey',
        'kms:GenerateDataKeyWithoutPlaintext',
        'kms:ReEncryptFrom',
        'kms:ReEncryptTo',
      ],
      resources: [key.keyArn],
      conditions: { StringEquals: viaEc2 },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'EbsGrantsOnTheVolumeKeyOnly',
      actions: ['kms:CreateGrant'],
      resources: [key.keyArn],
      conditions: { StringEquals: viaEc2, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
    }),
  );
  acknowledgeWildcard(
    role,
    'Resource::*',
    'ec2:DescribeInstances and ec2:DescribeVolumes have no resource-level permissions; they only read.',
  );
  acknowledgeWildcard(
    role,
    'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*',
    `Volume IDs are only known at run time: CreateVolume needs the ${MANAGED_TAG_KEY}, ${DEPLOYMENT_TAG_KEY}, ${NODE_TAG_KEY} and ${REPLACES_TAG_KEY} tags in the request and encryption; tagging at creation only with CreateVolume; attaching, re-tagging and detaching only volumes tagged by this deployment (managed, or replaced for the detach).`,
  );
  acknowledgeWildcard(
    role,
    'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*',
    `AttachVolume and DetachVolume only on instances tagged ${MANAGED_TAG_KEY}=true and ${DEPLOYMENT_TAG_KEY}=${prefix}.`,
  );
  acknowledgeWildcard(
    role,
    `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${prefix}/nodes/*`,
    'The node registry: AddDataVolume checks that the instance and its volume are the registered node.',
  );
}
