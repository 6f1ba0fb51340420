import { RemovalPolicy, Size, Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import { type EbsVolumeType, VOLUME_LIMITS } from '../contracts/ebs';
import { DEPLOYMENT_TAG_KEY, MANAGED_TAG_KEY, MANAGED_TAG_VALUE, NODE_TAG_KEY } from './tags';

export interface DataVolumeProps {
  /** StemeDB node name; tagged as `stemedb:node` and used in the volume's Name tag. */
  readonly nodeName: string;
  /** Instance the volume is attached to. */
  readonly instanceId: string;
  /** Availability Zone of the instance. */
  readonly availabilityZone: string;
  /** Size in GiB, within the type's limits. */
  readonly sizeGiB: number;
  /** @default 'gp3' */
  readonly volumeType?: EbsVolumeType;
  /** Provisioned IOPS (gp3, io1, io2). @default the type's baseline */
  readonly iops?: number;
  /** Throughput in MiB/s (gp3). @default 125 */
  readonly throughput?: number;
  /** Device name for the attachment. @default '/dev/sdf' */
  readonly deviceName?: string;
  /** Customer-managed key the volume is encrypted with. */
  readonly encryptionKey: kms.IKey;
  /** The deployment's prefix: the volume's Name tag and its `stemedb:deployment` tag. @default 'StemeDB' */
  readonly prefix?: string;
}

const EBS_TYPES: Record<EbsVolumeType, ec2.EbsDeviceVolumeType> = {
  gp3: ec2.EbsDeviceVolumeType.GP3,
  gp2: ec2.EbsDeviceVolumeType.GP2,
  io1: ec2.EbsDeviceVolumeType.IO1,
  io2: ec2.EbsDeviceVolumeType.IO2,
  st1: ec2.EbsDeviceVolumeType.ST1,
  sc1: ec2.EbsDeviceVolumeType.SC1,
  standard: ec2.EbsDeviceVolumeType.STANDARD,
};

/**
 * The EBS volume that holds a node's `/data`: encrypted with the stack's customer-managed key,
 * retained on stack deletion and on replacement (the stack never deletes data), attached to the
 * node's instance and tagged so that every later IAM statement can be scoped to it (managed, its
 * node, and this deployment: the managed tag alone is the same in every deployment).
 */
export class DataVolume extends Construct {
  public readonly volume: ec2.Volume;
  public readonly volumeId: string;
  public readonly attachment: ec2.CfnVolumeAttachment;

  constructor(scope: Construct, id: string, props: DataVolumeProps) {
    super(scope, id);
    const volumeType = props.volumeType ?? 'gp3';
    const deviceName = props.deviceName ?? '/dev/sdf';
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const limits = VOLUME_LIMITS[volumeType];
    if (limits === undefined) {
      throw new Error(
        `DataVolume volumeType is ${JSON.stringify(volumeType)}; expected one of ${Object.keys(VOLUME_LIMITS).join(', ')}`,
      );
    }
    if (!Number.isInteger(props.sizeGiB) || props.sizeGiB < limits.minGiB || props.sizeGiB > limits.maxGiB) {
      throw new Error(
        `DataVolume sizeGiB is ${props.sizeGiB}; expected a whole number from ${limits.minGiB} to ${limits.maxGiB} for ${volumeType}`,
      );
    }
    if (!/^\/dev\/(?:sd[f-p]|xvd[f-p])$/.test(deviceName)) {
      throw new Error(
        `DataVolume deviceName is ${JSON.stringify(deviceName)}; expected /dev/sdf to /dev/sdp or /dev/xvdf to /dev/xvdp`,
      );
    }

    this.volume = new ec2.Volume(this, 'Volume', {
      availabilityZone: props.availabilityZone,
      size: Size.gibibytes(props.sizeGiB),
      volumeType: EBS_TYPES[volumeType],
      iops: props.iops,
      throughput: props.throughput,
      encrypted: true,
      encryptionKey: props.encryptionKey,
      volumeName: `${prefix}-${props.nodeName}-data`,
      // Retain sets both DeletionPolicy and UpdateReplacePolicy: data outlives the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Tags.of(this.volume).add(MANAGED_TAG_KEY, MANAGED_TAG_VALUE);
    Tags.of(this.volume).add(NODE_TAG_KEY, props.nodeName);
    Tags.of(this.volume).add(DEPLOYMENT_TAG_KEY, prefix);
    this.volumeId = this.volume.volumeId;

    this.attachment = new ec2.CfnVolumeAttachment(this, 'Attachment', {
      instanceId: props.instanceId,
      volumeId: this.volume.volumeId,
      device: deviceName,
    });
  }
}
