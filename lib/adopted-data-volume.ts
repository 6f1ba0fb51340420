import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { VOLUME_ID_PATTERN } from '../contracts/aws-ids';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import { acknowledgeCustomResourceProvider } from './nag-acknowledgements';
import { DEPLOYMENT_TAG_KEY, MANAGED_TAG_KEY, MANAGED_TAG_VALUE, NODE_TAG_KEY } from './tags';

export interface AdoptedDataVolumeProps {
  /** StemeDB node name, tagged as `stemedb:node`. */
  readonly nodeName: string;
  /** The existing EBS volume (`vol-…`), already attached to the node's instance. */
  readonly volumeId: string;
  /** The deployment's prefix, tagged as `stemedb:deployment`. @default 'StemeDB' */
  readonly prefix?: string;
}

/**
 * A data volume that already exists: the stack tags it so the automation may act on it, and
 * alarms on it through its node, but never owns it. Deleting the stack leaves the volume and
 * its tags exactly as they are (there is no onDelete call).
 */
export class AdoptedDataVolume extends Construct {
  public readonly volumeId: string;

  constructor(scope: Construct, id: string, props: AdoptedDataVolumeProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    if (!VOLUME_ID_PATTERN.test(props.volumeId)) {
      throw new Error(
        `AdoptedDataVolume volumeId is ${JSON.stringify(props.volumeId)}; expected vol- and 8 or 17 hex digits`,
      );
    }
    this.volumeId = props.volumeId;
    const stack = Stack.of(this);
    const volumeArn = stack.formatArn({ service: 'ec2', resource: 'volume', resourceName: props.volumeId });
    const tagCall: cr.AwsSdkCall = {
      service: 'EC2',
      action: 'createTags',
      parameters: {
        Resources: [props.volumeId],
        Tags: [
          { Key: MANAGED_TAG_KEY, Value: MANAGED_TAG_VALUE },
          { Key: NODE_TAG_KEY, Value: props.nodeName },
          { Key: DEPLOYMENT_TAG_KEY, Value: prefix },
        ],
      },
      physicalResourceId: cr.PhysicalResourceId.of(`adopted-${props.volumeId}`),
    };
    new cr.AwsCustomResource(this, 'Tags', {
      onCreate: tagCall,
      onUpdate: tagCall,
      installLatestAwsSdk: false,
      policy: cr.AwsCustomResourcePolicy.fromStatements([
        new iam.PolicyStatement({ actions: ['ec2:CreateTags'], resources: [volumeArn] }),
      ]),
    });
    // The custom resource's provider is a stack-wide singleton: acknowledged on the provider itself.
    acknowledgeCustomResourceProvider(stack);
  }
}
