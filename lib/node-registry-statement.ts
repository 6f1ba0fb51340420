import type { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { nodeRegistryParameterName } from '../contracts/node-registry';

/**
 * The statement that lets a principal read this deployment's node registry: `ssm:GetParameter`
 * on every `/<prefix>/nodes/*` parameter and nothing else.
 *
 * @param stack the stack whose partition, region and account the parameter ARN names
 * @param prefix the deployment prefix the registry parameters live under
 * @param sid the statement id; @default 'ReadNodeRegistry'
 */
export function readNodeRegistryStatement(
  stack: Stack,
  prefix: string,
  sid = 'ReadNodeRegistry',
): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid,
    actions: ['ssm:GetParameter'],
    resources: [
      stack.formatArn({
        service: 'ssm',
        resource: 'parameter',
        resourceName: nodeRegistryParameterName(prefix, '*').slice(1),
      }),
    ],
  });
}
