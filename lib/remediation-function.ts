import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';
import { METRICS_NAMESPACE } from '../contracts/metrics';
import { acknowledgeWildcard, nagArn } from './nag-acknowledgements';

export interface RemediationFunctionProps {
  /** Handler file under `lambda/`, without `.ts` (e.g. `expand-volume`). */
  readonly entryName: string;
  /** Function name prefix: the function is named `<prefix>-<entryName>`. @default 'StemeDB' */
  readonly prefix?: string;
  /** What the function does, for the console. */
  readonly description: string;
  /** Environment besides the Powertools settings. @default none */
  readonly environment?: Readonly<Record<string, string>>;
  /** @default 1 minute */
  readonly timeout?: Duration;
  /** @default 256 */
  readonly memorySize?: number;
  /** Reserved concurrency; 1 serializes the function. @default unreserved */
  readonly reservedConcurrentExecutions?: number;
  /** Days the function's logs are kept. @default 90 days */
  readonly logRetention?: logs.RetentionDays;
}

/** Handlers live in `lambda/<name>.ts`; resolved from this file so synth works from any cwd. */
export const LAMBDA_DIR = join(__dirname, '..', 'lambda');

/**
 * A remediation Lambda as the project builds every one: bundled locally by esbuild as
 * tree-shaken ESM with the AWS SDK v3 clients inside (about half the cold-start import time of
 * the runtime's own SDK, see DESIGN.md), ARM64, Node.js 24, its own log group with retention,
 * and its own role that may write only to that log group. Each function's construct (a subclass,
 * e.g. `ExpandVolumeFunction`) adds the AWS permissions it needs.
 */
export class RemediationFunction extends Construct {
  public readonly function: NodejsFunction;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: RemediationFunctionProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const entry = join(LAMBDA_DIR, `${props.entryName}.ts`);
    if (!/^[a-z][a-z0-9-]*$/.test(props.entryName) || !existsSync(entry)) {
      throw new Error(
        `RemediationFunction entryName is ${JSON.stringify(props.entryName)}; expected the name of a handler file in lambda/ (${entry} does not exist)`,
      );
    }
    const memorySize = props.memorySize ?? 256;
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10_240) {
      throw new Error(
        `RemediationFunction memorySize is ${memorySize}; expected a whole number of MB from 128 to 10240`,
      );
    }
    const functionName = `${prefix}-${props.entryName}`;

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `${functionName}: its log group and the actions its construct grants`,
    });
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    acknowledgeWildcard(
      this.role,
      `Resource::${nagArn(this.logGroup.node.defaultChild as logs.CfnLogGroup)}:*`,
      "Log streams are created by Lambda at run time with generated names; the wildcard is limited to this function's own log group.",
    );

    this.function = new NodejsFunction(this, 'Function', {
      functionName,
      description: props.description,
      entry,
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize,
      timeout: props.timeout ?? Duration.minutes(1),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      environment: {
        POWERTOOLS_SERVICE_NAME: functionName,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        ...props.environment,
      },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        minify: true,
        sourceMap: false,
        // Bundle the SDK v3 clients (tree-shaken) instead of importing the runtime's copy.
        bundleAwsSDK: true,
        externalModules: [],
        forceDockerBundling: false,
        banner:
          "import { createRequire as __stemedbCreateRequire } from 'node:module'; const require = __stemedbCreateRequire(import.meta.url);",
      },
    });
    // CDK makes a function depend on its role's policy and on the role it also reads with GetAtt;
    // cfn-lint flags the second as redundant (W3005). The dependency is harmless and CDK-owned.
    (this.function.node.defaultChild as lambda.CfnFunction).addMetadata('cfn-lint', {
      config: { ignore_checks: ['W3005'] },
    });
  }
}
