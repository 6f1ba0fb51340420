import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type CfnResource, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { parse as parseYaml } from 'yaml';
import { VOLUME_LIMITS } from '../contracts/ebs';
import {
  AUTOMATION_DOCUMENTS,
  type AutomationDocumentName,
  COMMAND_DOCUMENTS,
  type CommandDocumentName,
} from '../contracts/sections';
import { AutomationDocument, defaultAutomationDefinitionFile, placeholdersIn } from './automation-document';
import type { AutomationRole } from './automation-role';
import { CommandDocument, REPO_ROOT } from './command-document';
import type { StemeDbConfig } from './config';
import { grantDataVolumeMigration } from './data-volume-migration-grants';
import { restrictFstabFile } from './migrate-data-volume';
import { acknowledgeWildcard, nagArn } from './nag-acknowledgements';
import { functionNameSubstitutions, type SectionFunctions } from './remediation-functions';
import { acknowledgeStartAutomationVersions, startAutomationResources } from './start-automation-resources';
import { DEPLOYMENT_TAG_KEY, MANAGED_TAG_KEY, MANAGED_TAG_VALUE } from './tags';
import { grantPublishThroughSns } from './topic-publish-grant';
import type { WalArchiveBucket } from './wal-archive-bucket';

/** The configuration keys the documents' `${Placeholder}`s take their values from. */
export type RunbookDocumentsConfig = Pick<
  StemeDbConfig,
  | 'prefix'
  | 'dataMount'
  | 'walDir'
  | 'dbDir'
  | 'serviceName'
  | 'configFile'
  | 'fstabFile'
  | 'healthUrl'
  | 'backupDir'
  | 'thresholds'
  | 'wal'
  | 'expansion'
  | 'remediation'
>;

export interface RunbookDocumentsProps {
  /** The validated configuration. */
  readonly config: RunbookDocumentsConfig;
  /** The role every Automation document runs as; it gets what their steps do. */
  readonly automationRole: AutomationRole;
  /** Where every Automation document reports. */
  readonly topic: sns.ITopic;
  /** The WAL archive (ArchiveWal uploads to it). */
  readonly archive: WalArchiveBucket;
  /** The key AddDataVolume encrypts new data volumes with (the stack key). */
  readonly volumeKey: kms.IKey;
  /** The sections' Lambdas, which the documents invoke by name. */
  readonly functions: SectionFunctions;
}

/** The runbook's documents as deployed, by registry name. */
export interface RunbookDocuments {
  readonly commandDocuments: Readonly<Record<CommandDocumentName, CommandDocument>>;
  readonly automationDocuments: Readonly<Record<AutomationDocumentName, AutomationDocument>>;
}

/**
 * Builds every section's Command documents (`Host<Name>`, deployed as `<prefix>-Host-<Name>`) and
 * Automation documents (`Automation<Name>`, deployed as `<prefix>-<Name>`) in `scope`, from the
 * section registry (contracts/sections.ts) in its deployment order, and grants the automation role
 * what their steps do. The documents are direct children of `scope` under those IDs, so their
 * logical IDs and construct paths stay those of the deployed stack (a document has a fixed name:
 * a new logical ID would replace it, and the replacement would fail on the name).
 */
export function buildRunbookDocuments(scope: Construct, props: RunbookDocumentsProps): RunbookDocuments {
  const { config, automationRole } = props;
  const { prefix } = config;

  const commandDocuments = {} as Record<CommandDocumentName, CommandDocument>;
  for (const name of COMMAND_DOCUMENTS)
    commandDocuments[name] = new CommandDocument(scope, `Host${name}`, { prefix, name });
  restrictFstabFile(commandDocuments.MigrateDataVolume, config.fstabFile);

  const substitutions: Record<string, string> = {
    Prefix: prefix,
    AutomationRoleArn: automationRole.role.roleArn,
    TopicArn: props.topic.topicArn,
    DataMount: config.dataMount,
    WalDir: config.walDir,
    DbDir: config.dbDir,
    ServiceName: config.serviceName,
    ConfigFile: config.configFile,
    HealthUrl: config.healthUrl,
    BackupDir: config.backupDir,
    BaseUrl: new URL(config.healthUrl).origin,
    RecoveredUsedPercent: String(config.thresholds.recoveredUsedPercent),
    RecoveredInodesFreePercent: String(config.thresholds.recoveredInodesFreePercent),
    WalRetentionDays: String(config.wal.retentionDays),
    WalMaxSegments: String(config.wal.maxSegments),
    WalSegmentSizeMb: String(config.wal.segmentSizeMb),
    ArchiveAfterDays: String(config.wal.archiveAfterDays),
    ArchiveBucket: props.archive.bucket.bucketName,
    ...functionNameSubstitutions(props.functions),
    GrowPercent: String(config.expansion.growPercent),
    MinGrowGiB: String(config.expansion.minGrowGiB),
    MaxSizeGiB: String(config.expansion.maxSizeGiB),
    VolumeLimits: JSON.stringify(VOLUME_LIMITS),
    VolumeKeyArn: props.volumeKey.keyArn,
    MigrateWhenRefused: String(config.remediation.migrateWhenRefused),
  };
  const automationDocuments = {} as Record<AutomationDocumentName, AutomationDocument>;
  for (const name of AUTOMATION_DOCUMENTS) {
    automationDocuments[name] = new AutomationDocument(scope, `Automation${name}`, {
      prefix,
      name,
      substitutions: substitutionsUsedBy(name, substitutions),
    });
  }

  grantDocumentSteps(automationRole, { ...props, commandDocuments, automationDocuments });
  grantDataVolumeMigration(automationRole.role, { prefix, volumeKey: props.volumeKey });
  return { commandDocuments, automationDocuments };
}

/**
 * What the steps of the documents do, for the automation role: invoke the sections' Lambdas, run
 * this stack's Command documents on managed instances of this deployment and follow them, read
 * the node tag and the disk metrics, notify, and start the documents some document starts.
 */
function grantDocumentSteps(
  automationRole: AutomationRole,
  props: RunbookDocumentsProps & RunbookDocuments,
): void {
  const role = automationRole.role;
  const stack = Stack.of(role);
  const functions = Object.values(props.functions);
  for (const fn of functions) fn.function.grantInvoke(role);
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'RunThisStacksCommandDocuments',
      actions: ['ssm:SendCommand'],
      resources: Object.values(props.commandDocuments).map((c) => c.documentArn),
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'RunCommandsOnManagedInstancesOnly',
      actions: ['ssm:SendCommand'],
      resources: [stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' })],
      conditions: {
        StringEquals: {
          [`ssm:resourceTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE,
          [`ssm:resourceTag/${DEPLOYMENT_TAG_KEY}`]: props.config.prefix,
        },
      },
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'FollowCommands',
      actions: [
        'ssm:ListCommands',
        'ssm:ListCommandInvocations',
        'ssm:GetCommandInvocation',
        'ssm:DescribeInstanceInformation',
      ],
      resources: ['*'],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      // ArchiveWal's ResolveNode reads the instance's stemedb:node tag when no Node is passed
      // (every alarm-started and child run). DescribeTags has no resource types in the Service
      // Authorization Reference: it can only be granted on *.
      sid: 'ReadInstanceNodeTag',
      actions: ['ec2:DescribeTags'],
      resources: ['*'],
    }),
  );
  role.addToPolicy(
    new iam.PolicyStatement({
      // ExpandVolume's ReadDiskUsage reads the agent's disk_free/disk_total: the "growth not yet
      // used" guard. Metric reads have no resource-level permissions (the SAR's only resource
      // type for GetMetricData is a CloudWatch Observability dataset): *.
      sid: 'ReadDiskMetrics',
      actions: ['cloudwatch:GetMetricData'],
      resources: ['*'],
    }),
  );
  grantPublishThroughSns(props.topic, role);
  // Only the documents some document starts as a child (aws:executeAutomation): ExpandVolume
  // falls back to ArchiveWal, the cleanups start ArchiveWal and ExpandVolume.
  const children = childAutomations(props.automationDocuments);
  if (children.length > 0) {
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'StartThisStacksAutomations',
        actions: ['ssm:StartAutomationExecution'],
        resources: startAutomationResources(stack, children),
      }),
    );
  }
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'FollowAutomations',
      actions: ['ssm:GetAutomationExecution'],
      resources: [stack.formatArn({ service: 'ssm', resource: 'automation-execution', resourceName: '*' })],
    }),
  );
  automationRole.grantPassToSsm(role);
  acknowledgeWildcard(
    role,
    'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*',
    `SendCommand is limited by condition to instances tagged ${MANAGED_TAG_KEY}=true and ${DEPLOYMENT_TAG_KEY}=${props.config.prefix}, and to this stack's documents.`,
  );
  acknowledgeWildcard(
    role,
    'Resource::*',
    'ssm:ListCommands, ssm:ListCommandInvocations, ssm:GetCommandInvocation, ssm:DescribeInstanceInformation and ec2:DescribeTags have no resource types (Service Authorization Reference), and cloudwatch:GetMetricData is evaluated against * for metric queries (its only resource type is an Observability dataset); all of them only read.',
  );
  acknowledgeWildcard(
    role,
    'Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-execution/*',
    "Execution IDs are only known at run time: StartAutomationExecution is authorized on the new execution's ARN (with this stack's documents only), and the role reads the executions it starts.",
  );
  acknowledgeStartAutomationVersions(role, children);
  for (const fn of functions) {
    acknowledgeWildcard(
      role,
      `Resource::${nagArn(fn.function.node.defaultChild as CfnResource)}:*`,
      "CDK grantInvoke also allows the function's versions and aliases; the function itself is this stack's.",
    );
  }
}

/** The documents that `aws:executeAutomation` steps start, each checked to be one of `automations`. */
function childAutomations(automations: Readonly<Record<string, AutomationDocument>>): string[] {
  const deployed = new Set(Object.values(automations).map((a) => a.documentName));
  const children = new Set<string>();
  for (const a of Object.values(automations)) {
    for (const step of a.content.mainSteps) {
      if (step.action !== 'aws:executeAutomation') continue;
      const name = (step.inputs as { DocumentName?: unknown } | undefined)?.DocumentName;
      if (typeof name !== 'string' || !deployed.has(name))
        throw new Error(
          `${a.documentName} step ${String(step.name)} starts ${String(name)}, which this stack does not deploy`,
        );
      children.add(name);
    }
  }
  return [...children].sort();
}

/** The substitutions a document's YAML actually uses (the document construct rejects unused ones). */
function substitutionsUsedBy(name: string, all: Record<string, string>): Record<string, string> {
  const file = resolve(REPO_ROOT, defaultAutomationDefinitionFile(name));
  const used = placeholdersIn(parseYaml(readFileSync(file, 'utf8')));
  return Object.fromEntries(Object.entries(all).filter(([k]) => used.has(k)));
}
