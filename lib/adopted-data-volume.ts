import { CfnResource, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { VOLUME_ID_PATTERN } from '../contracts/aws-ids';
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
    const prefix = props.prefix ?? 'StemeDB';
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
    // The custom resource's provider is a stack-wide singleton: acknowledge on the provider itself.
    const provider = stack.node.tryFindChild(PROVIDER_ID);
    if (provider !== undefined) {
      Validations.of(provider).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          'The AwsCustomResource provider (CDK-owned singleton) only writes its own logs with the basic execution policy; its EC2 permission is the single CreateTags statement above, scoped to the adopted volume ARN.',
      });
      // CDK emits both a DependsOn and a GetAtt on the provider's role; cfn-lint flags the redundancy (W3005).
      const fn = provider.node.defaultChild;
      if (fn instanceof CfnResource) fn.addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
    }
  }
}

/** Construct ID CDK gives the AwsCustomResource singleton provider function. */
const PROVIDER_ID = 'AWS679f53fac002430cb0da5b7982bd2287';
