import { ArnFormat, Stack } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX, PREFIX_PATTERN } from '../contracts/deployment';
import type { AutomationDocument } from './automation-document';
import { passRoleToSsmStatement } from './automation-role';
import type { CommandDocument } from './command-document';
import { acknowledgeWildcard } from './nag-acknowledgements';
import { readNodeRegistryStatement } from './node-registry-statement';
import { startAutomationResources } from './start-automation-resources';

export interface OperatorPolicyProps {
  /** Name prefix of the deployment (config `prefix`); the policy is `<prefix>-operator`. @default 'StemeDB' */
  readonly prefix?: string;
  /** The Automation documents an operator may start, stop and follow: this stack's, every one of them. */
  readonly automationDocuments: readonly AutomationDocument[];
  /**
   * The Command documents the automations run (checked to be this deployment's). Operators may
   * read them (DescribeDocument, GetDocument on `document/<prefix>-*`) and their invocations,
   * never send them. @default none
   */
  readonly commandDocuments?: readonly CommandDocument[];
  /** The role the documents run as (`AutomationAssumeRole`): passed to SSM only. */
  readonly automationRole: iam.IRole;
  /** The kill switch `/<prefix>/automation-mode`: the one parameter operators may write. */
  readonly modeParameter: ssm.IStringParameter;
  /** The dashboard operators read. */
  readonly dashboard: cloudwatch.Dashboard;
  /**
   * Names of the deployment's other dashboards operators read (the fleet overview and the node
   * stacks' shard dashboards, which live in other stacks): each must start with `<prefix>-`.
   * @default none
   */
  readonly otherDashboardNames?: readonly string[];
  /** Log groups operators may search (the remediation Lambdas', the router's decisions among them). @default none */
  readonly logGroups?: readonly logs.ILogGroup[];
}

/**
 * The IAM managed policy `<prefix>-operator` a platform team attaches to the roles (or groups) of
 * the people who run this stack's runbook sections by hand: start, stop and follow this stack's
 * Automation documents (and no other), pass the automation role to SSM (and no other role, to no
 * other service), read the Command documents' invocations, flip the kill switch, read the
 * dashboard, the stack's alarms, the remediation Lambdas' logs, the node registry and the stack's
 * outputs. It grants no SendCommand (operators start Automations; the Automation runs commands),
 * no document, parameter (but the kill switch), EC2 or S3 write. Where an action has no
 * resource-level permission (Service Authorization Reference) it is granted on `*`, read-only,
 * and each such grant is acknowledged naming the actions.
 */
export class OperatorPolicy extends Construct {
  public readonly policy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: OperatorPolicyProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const commandDocuments = props.commandDocuments ?? [];
    const logGroups = props.logGroups ?? [];
    const otherDashboards = props.otherDashboardNames ?? [];
    const strangers = otherDashboards.filter(
      (n) => !n.startsWith(`${prefix}-`) || !/^[A-Za-z0-9_-]{1,255}$/.test(n),
    );
    if (strangers.length > 0) {
      throw new Error(
        `OperatorPolicy otherDashboardNames has ${strangers.map((n) => JSON.stringify(n)).join(', ')}; expected dashboard names of letters, digits, "_" and "-" starting with "${prefix}-"`,
      );
    }
    validate(prefix, props.automationDocuments, commandDocuments);
    const stack = Stack.of(this);
    const automationNames = props.automationDocuments.map((d) => d.documentName);
    const executions = stack.formatArn({
      service: 'ssm',
      resource: 'automation-execution',
      resourceName: '*',
    });
    const alarms = stack.formatArn({
      service: 'cloudwatch',
      resource: 'alarm',
      resourceName: `${prefix}-*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const statements = [
      new iam.PolicyStatement({
        sid: 'StartThisStacksAutomations',
        actions: ['ssm:StartAutomationExecution'],
        resources: startAutomationResources(stack, automationNames),
      }),
      passRoleToSsmStatement(props.automationRole),
      new iam.PolicyStatement({
        sid: 'FollowAndStopAutomations',
        actions: [
          'ssm:GetAutomationExecution',
          'ssm:DescribeAutomationStepExecutions',
          'ssm:StopAutomationExecution',
        ],
        resources: [executions],
      }),
      new iam.PolicyStatement({
        sid: 'ListAutomationsAndCommands',
        actions: [
          'ssm:DescribeAutomationExecutions',
          'ssm:ListDocuments',
          'ssm:ListCommands',
          'ssm:ListCommandInvocations',
          'ssm:GetCommandInvocation',
          'cloudwatch:ListDashboards',
          'cloudwatch:GetMetricData',
        ],
        resources: ['*'],
      }),
      new iam.PolicyStatement({
        // One pattern, not one ARN per document: read only, and it keeps the policy well under
        // IAM's 6,144 characters for a managed policy (explicit ARNs are spent where it matters,
        // on StartAutomationExecution).
        sid: 'ReadThisDeploymentsDocuments',
        actions: ['ssm:DescribeDocument', 'ssm:GetDocument'],
        resources: [stack.formatArn({ service: 'ssm', resource: 'document', resourceName: `${prefix}-*` })],
      }),
      new iam.PolicyStatement({
        sid: 'ReadAndFlipKillSwitch',
        actions: ['ssm:GetParameter', 'ssm:PutParameter'],
        resources: [props.modeParameter.parameterArn],
        // No parameter policies (they need the advanced tier, which costs money).
        conditions: { Null: { 'ssm:Policies': 'true' } },
      }),
      readNodeRegistryStatement(stack, prefix),
      new iam.PolicyStatement({
        sid: 'ReadDashboard',
        actions: ['cloudwatch:GetDashboard'],
        resources: [
          props.dashboard.dashboardArn,
          ...otherDashboards.map((name) =>
            stack.formatArn({ service: 'cloudwatch', region: '', resource: 'dashboard', resourceName: name }),
          ),
        ],
      }),
      new iam.PolicyStatement({
        sid: 'ReadThisStacksAlarms',
        actions: ['cloudwatch:DescribeAlarms', 'cloudwatch:DescribeAlarmHistory'],
        resources: [alarms],
      }),
      new iam.PolicyStatement({
        sid: 'ReadStackOutputs',
        actions: ['cloudformation:DescribeStacks'],
        resources: [
          stack.formatArn({
            service: 'cloudformation',
            resource: 'stack',
            resourceName: `${stack.stackName}/*`,
          }),
        ],
      }),
    ];
    if (logGroups.length > 0) {
      statements.push(
        new iam.PolicyStatement({
          // The log group's ARN in both forms AWS uses: `log-group:<name>` (the Service
          // Authorization Reference's) and `log-group:<name>:*` (CloudFormation's Arn attribute).
          sid: 'SearchAutomationLogs',
          actions: ['logs:FilterLogEvents'],
          resources: logGroups.flatMap((g) => [
            stack.formatArn({
              service: 'logs',
              resource: 'log-group',
              resourceName: g.logGroupName,
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
            g.logGroupArn,
          ]),
        }),
      );
    }
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      managedPolicyName: `${prefix}-operator`,
      description: `${prefix} disk automation operators: start, stop and follow this stack's Automations, flip the kill switch, read results`,
      statements,
    });

    acknowledgeWildcard(
      this.policy,
      'Resource::*',
      'ssm:DescribeAutomationExecutions, ssm:ListDocuments, ssm:ListCommands, ssm:ListCommandInvocations, ssm:GetCommandInvocation and cloudwatch:ListDashboards have no resource types in the Service Authorization Reference, and cloudwatch:GetMetricData is evaluated against * for metric queries (its only resource type is an Observability dataset); all of them only read.',
    );
    acknowledgeWildcard(
      this.policy,
      'Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-execution/*',
      "Execution IDs are only known at run time and an execution's ARN does not name its document: StartAutomationExecution is authorized on the new execution's ARN together with this stack's documents only; Get, DescribeAutomationStepExecutions and Stop act on executions of this account and region.",
    );
    for (const name of automationNames) {
      acknowledgeWildcard(
        this.policy,
        `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-definition/${name}:*`,
        `Every version of this stack's ${name} definition: AWS authorizes StartAutomationExecution on the resolved version (e.g. :1), not on :$DEFAULT.`,
      );
    }
    acknowledgeWildcard(
      this.policy,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:document/${prefix}-*`,
      "DescribeDocument and GetDocument only, read only: this deployment's documents, all named <prefix>-…; one pattern keeps the policy under IAM's 6,144-character limit for managed policies.",
    );
    acknowledgeWildcard(
      this.policy,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${prefix}/nodes/*`,
      'The node registry, read only: one parameter per node, named by the node (why ExpandVolume accepts or refuses a volume).',
    );
    acknowledgeWildcard(
      this.policy,
      `Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:${prefix}-*`,
      "Only this stack's alarms (named <prefix>-…), read only: their states and history.",
    );
    acknowledgeWildcard(
      this.policy,
      `Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/${stack.stackName}/*`,
      'This stack only, read only (DescribeStacks: its outputs); the stack ID after the name is assigned at creation.',
    );
  }
}

function validate(
  prefix: string,
  automationDocuments: readonly AutomationDocument[],
  commandDocuments: readonly CommandDocument[],
): void {
  if (!PREFIX_PATTERN.test(prefix))
    throw new Error(`OperatorPolicy prefix ${JSON.stringify(prefix)} is invalid: expected ${PREFIX_PATTERN}`);
  if (automationDocuments.length === 0)
    throw new Error(
      'OperatorPolicy automationDocuments is empty: expected the Automation documents of this stack',
    );
  const seen = new Set<string>();
  for (const d of automationDocuments) {
    if (!d.documentName.startsWith(`${prefix}-`) || d.documentName.startsWith(`${prefix}-Host-`))
      throw new Error(
        `OperatorPolicy automationDocuments names ${d.documentName}, which is not an Automation document of this deployment (expected ${prefix}-<Name>)`,
      );
    if (seen.has(d.documentName))
      throw new Error(`OperatorPolicy automationDocuments names ${d.documentName} twice`);
    seen.add(d.documentName);
  }
  for (const d of commandDocuments) {
    if (!d.documentName.startsWith(`${prefix}-Host-`))
      throw new Error(
        `OperatorPolicy commandDocuments names ${d.documentName}, which is not a Command document of this deployment (expected ${prefix}-Host-<Name>)`,
      );
  }
}
