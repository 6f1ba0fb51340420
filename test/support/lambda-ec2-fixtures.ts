/**
 * EC2 and node-registry fixtures shared by the tests of the EC2-facing Lambdas
 * (expand-volume, wait-for-volume-modification) and the ExpandVolume document's contract tests:
 * a managed data volume as the stack tags it, the registry entry the stack writes, the errors the
 * SDK throws, and a mocked EC2 that expands that volume.
 */
import {
  CreateSnapshotCommand,
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  type EC2ClientResolvedConfig,
  EC2ServiceException,
  ModifyVolumeCommand,
  type ServiceInputTypes,
  type ServiceOutputTypes,
  type Volume,
  type VolumeModification,
} from '@aws-sdk/client-ec2';
import { SSMServiceException } from '@aws-sdk/client-ssm';
import type { AwsStub } from 'aws-sdk-client-mock';

export const INSTANCE = 'i-0123456789abcdef0';
export const VOLUME = 'vol-0123456789abcdef0';
/** An instance VOLUME is not attached to. */
export const OTHER_INSTANCE = 'i-0fedcba9876543210';

/** A mocked EC2 client (`mockClient(EC2Client)`). */
export type Ec2Mock = AwsStub<ServiceInputTypes, ServiceOutputTypes, EC2ClientResolvedConfig>;

/** An EC2 client error as the SDK throws it: the AWS error code is its name. */
export function ec2Error(code: string, message = `${code} (mocked)`): EC2ServiceException {
  return new EC2ServiceException({ name: code, $fault: 'client', $metadata: {}, message });
}

/** An SSM client error as the SDK throws it: the AWS error code is its name. */
export function ssmError(code: string, message = `${code} (mocked)`): SSMServiceException {
  return new SSMServiceException({ name: code, $fault: 'client', $metadata: {}, message });
}

/** EC2 tags from a record, in its order. */
export function tagList(tags: Readonly<Record<string, string>>): Array<{ Key: string; Value: string }> {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

/** The tags the stack puts on a node's data volume (node db-1 of deployment StemeDB). */
export const MANAGED_TAGS: Readonly<Record<string, string>> = {
  'stemedb:managed': 'true',
  'stemedb:node': 'db-1',
  'stemedb:deployment': 'StemeDB',
};

/** VOLUME as the stack creates it: gp3, 100 GiB, tagged managed for node db-1, attached to INSTANCE. */
export function managedVolume(over: Partial<Volume> = {}): Volume {
  return {
    VolumeId: VOLUME,
    Size: 100,
    VolumeType: 'gp3',
    State: 'in-use',
    Tags: tagList(MANAGED_TAGS),
    Attachments: [{ InstanceId: INSTANCE, VolumeId: VOLUME, State: 'attached', Device: '/dev/sdf' }],
    ...over,
  };
}

/** A node registry entry as the stack writes it (`/<prefix>/nodes/<name>`): on INSTANCE with VOLUME. */
export function registryEntry(name: string, over: Record<string, string> = {}): string {
  return JSON.stringify({
    name,
    instanceId: INSTANCE,
    availabilityZone: 'eu-west-1a',
    volumeId: VOLUME,
    dataMount: '/data',
    ...over,
  });
}

/**
 * A mocked EC2 that expands `volume`: DescribeVolumes serves it, it has no modification yet,
 * CreateSnapshot and ModifyVolume succeed (the modification starts `modifying` at `startTime`).
 * With `applyModification`, ModifyVolume also sets the size DescribeVolumes serves next.
 */
export function mockExpandableVolume(
  ec2Mock: Ec2Mock,
  volume: Volume,
  options: { readonly startTime?: Date; readonly applyModification?: boolean } = {},
): void {
  let current = volume;
  ec2Mock.on(DescribeVolumesCommand).callsFake(() => ({ Volumes: [current] }));
  ec2Mock.on(DescribeVolumesModificationsCommand).rejects(ec2Error('InvalidVolumeModification.NotFound'));
  ec2Mock.on(CreateSnapshotCommand).resolves({ SnapshotId: 'snap-0123456789abcdef0', State: 'pending' });
  ec2Mock.on(ModifyVolumeCommand).callsFake((input: { Size: number }) => {
    const modification: VolumeModification = {
      VolumeId: current.VolumeId,
      ModificationState: 'modifying',
      OriginalSize: current.Size,
      TargetSize: input.Size,
      Progress: 0,
      ...(options.startTime === undefined ? {} : { StartTime: options.startTime }),
    };
    if (options.applyModification === true) current = { ...current, Size: input.Size };
    return { VolumeModification: modification };
  });
}
