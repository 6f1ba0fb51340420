import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { acknowledgeWildcard } from './nag-acknowledgements';
import { RemediationFunction } from './remediation-function';

export interface WaitForModificationFunctionProps {
  /** Name prefix (config `prefix`): the function is `<prefix>-wait-for-volume-modification`. */
  readonly prefix: string;
}

/**
 * How long one call waits at most; the Automation asks for up to this per call and asks again
 * while the waiter answers `pending`.
 */
const MAX_WAIT_SECONDS = 600;

/**
 * Runbook §5A's `wait-for-volume-modification` Lambda: waits until a volume modification is
 * `optimizing` or `completed` (the new size is usable at `optimizing`). It only reads.
 */
export class WaitForModificationFunction extends RemediationFunction {
  constructor(scope: Construct, id: string, props: WaitForModificationFunctionProps) {
    super(scope, id, {
      entryName: 'wait-for-volume-modification',
      prefix: props.prefix,
      description: 'Runbook §5A: waits until a volume modification is optimizing or completed',
      // The waiter also stops 5 s before its timeout and returns `pending`, and the Automation
      // asks once more.
      timeout: Duration.seconds(MAX_WAIT_SECONDS + 15),
      environment: {
        MAX_WAIT_SECONDS: String(MAX_WAIT_SECONDS),
        POLL_INTERVAL_SECONDS: '5',
        MAX_POLL_INTERVAL_SECONDS: '30',
      },
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeVolumeModifications',
        actions: ['ec2:DescribeVolumes', 'ec2:DescribeVolumesModifications'],
        resources: ['*'],
      }),
    );
    acknowledgeWildcard(
      this.role,
      'Resource::*',
      'DescribeVolumes and DescribeVolumesModifications do not support resource-level permissions; they only read.',
    );
  }
}
