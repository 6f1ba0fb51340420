/** What CDK synthesizes for the ARNs of a stack without a fixed account and region. */

const pseudo = (name: 'Partition' | 'Region' | 'AccountId') => ({ Ref: `AWS::${name}` });

/**
 * The `Fn::Join` of `arn:<partition>:<service>:<region>:<account><resource>` with the pseudo
 * parameters (an environment-agnostic stack's ARN); `resource` starts with its own `:`.
 */
export function stackArn(service: string, resource: string): { 'Fn::Join': [string, unknown[]] } {
  return {
    'Fn::Join': [
      '',
      ['arn:', pseudo('Partition'), `:${service}:`, pseudo('Region'), ':', pseudo('AccountId'), resource],
    ],
  };
}
