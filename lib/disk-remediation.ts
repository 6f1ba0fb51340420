import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ArnFormat, type CfnResource, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { parse as parseYaml } from 'yaml';
import { type RouteTable, routeTable } from '../lambda/shared/alarm-event';
import { VERIFIED_MANIFEST_NAME } from '../lambda/shared/wal-manifest';
import { AutomationDocument, defaultAutomationDefinitionFile, placeholdersIn } from './automation-document';
import { AutomationHealthAlarms } from './automation-health-alarms';
import { AutomationRole } from './automation-role';
import { CommandDocument, REPO_ROOT } from './command-document';
import { REMEDIATION_SECTIONS, type StemeDbConfig, VOLUME_LIMITS } from './config';
import { FSTAB_FILE, restrictFstabFile } from './migrate-data-volume';
import { acknowledgeWildcard, nagArn } from './nag-acknowledgements';
import { RemediationFunction } from './remediation-function';
import { grantPreExpansionSnapshotRetention } from './snapshot-retention-grant';
import { nodeRegistryParameterName } from './stemedb-node';
import { DEPLOYMENT_TAG_KEY, MANAGED_TAG_KEY, MANAGED_TAG_VALUE, NODE_TAG_KEY } from './tags';
import type { WalArchiveBucket } from './wal-archive-bucket';

/** The tag AddDataVolume gives a new volume: the volume it replaces. */
const REPLACES_TAG_KEY = 'stemedb:replaces';

export interface DiskRemediationProps {
  /** The validated configuration. */
  readonly config: StemeDbConfig;
  /** Where every automation reports. */
  readonly topic: sns.ITopic;
  /** The WAL archive. */
  readonly archive: WalArchiveBucket;
  /**
   * The key AddDataVolume encrypts new data volumes with (the stack key, as for the volumes the
   * stack creates). @default the WAL archive's key, which is the stack key
   */
  readonly volumeKey?: kms.IKey;
}

/** Command documents (scripts run on the node), deployed as `<prefix>-Host-<Name>`. */
export const COMMAND_DOCUMENTS = [
  'DiskReport',
  'GrowFilesystem',
  'ArchiveWal',
  'DeleteArchivedWal',
  'WalCleanup',
  'ValidateDiskHealth',
  'CompactDatabase',
  'EmergencyCleanup',
  'InodeCleanup',
  'MigrateDataVolume',
] as const;
export type CommandDocumentName = (typeof COMMAND_DOCUMENTS)[number];

/**
 * Automation documents (runbook sections), deployed as `<prefix>-<Name>`: the sections the router
 * may start, and §5B's two, which only a human starts (AddDataVolume stops the service for the
 * final copy; RetireDataVolume detaches a volume).
 */
export const AUTOMATION_DOCUMENTS = [...REMEDIATION_SECTIONS, 'AddDataVolume', 'RetireDataVolume'] as const;
export type AutomationDocumentName = (typeof AUTOMATION_DOCUMENTS)[number];

/**
 * The remediation machinery shared by every node: the runbook's Command and Automation
 * documents, the Lambdas they call, the role they run as, and the alarm router that starts them
 * when an alarm fires (and re-checks alarms that stay in ALARM). Every permission is granted
 * here, next to the thing that needs it, scoped to this stack's documents and functions and to
 * resources tagged `stemedb:managed=true`.
 */
export class DiskRemediation extends Construct {
  public readonly automationRole: iam.Role;
  public readonly commandDocuments: Readonly<Record<CommandDocumentName, CommandDocument>>;
  public readonly automationDocuments: Readonly<Record<AutomationDocumentName, AutomationDocument>>;
  public readonly expandVolume: RemediationFunction;
  public readonly waitForModification: RemediationFunction;
  public readonly verifyArchive: RemediationFunction;
  public readonly router: RemediationFunction;
  /** The kill switch `/<prefix>/automation-mode` (act, observe, off) the router reads. */
  public readonly modeParameter: ssm.StringParameter;
  /** Alarms on the automation itself (Lambda errors, undelivered alarm events). */
  public readonly healthAlarms: AutomationHealthAlarms;

  constructor(scope: Construct, id: string, props: DiskRemediationProps) {
    super(scope, id);
    const { config, topic, archive } = props;
    const volumeKey = props.volumeKey ?? archive.bucket.encryptionKey;
    if (volumeKey === undefined)
      throw new Error(
        'DiskRemediation volumeKey is not given and the WAL archive has no KMS key to use instead',
      );
    const { prefix } = config;

    const automationRole = new AutomationRole(this, 'AutomationRole', { prefix });
    this.automationRole = automationRole.role;

    // --- Lambdas -------------------------------------------------------------------------------
    this.expandVolume = new RemediationFunction(this, 'ExpandVolume', {
      entryName: 'expand-volume',
      prefix,
      description: 'Runbook §5A: grows a managed EBS data volume (snapshot first), or says why not',
      timeout: Duration.minutes(1),
      environment: {
        GROW_PERCENT: String(config.expansion.growPercent),
        MIN_GROW_GIB: String(config.expansion.minGrowGiB),
        MAX_SIZE_GIB: String(config.expansion.maxSizeGiB),
        SNAPSHOT_BEFORE_EXPAND: String(config.expansion.snapshotBeforeExpand),
        SNAPSHOTS_KEPT: String(config.expansion.snapshotsKept),
        SNAPSHOTS_DELETE_AFTER_DAYS: String(config.expansion.snapshotsDeleteAfterDays),
        WARN_WITHIN_PERCENT: String(config.expansion.warnWithinPercent),
        WARNING_FREE_PERCENT: String(config.thresholds.warningFreePercent),
        MANAGED_TAG_KEY,
        NODE_TAG_KEY,
        DEPLOYMENT_TAG_KEY,
        DEPLOYMENT: prefix,
        NODE_PARAMETER_PREFIX: `/${prefix}/nodes/`,
      },
    });
    this.waitForModification = new RemediationFunction(this, 'WaitForModification', {
      entryName: 'wait-for-volume-modification',
      prefix,
      description: 'Runbook §5A: waits until a volume modification is optimizing or completed',
      // The Automation asks for up to 600 s per call; the waiter also stops 5 s before its timeout
      // and returns `pending`, and the Automation asks once more.
      timeout: Duration.seconds(615),
      environment: { MAX_WAIT_SECONDS: '600', POLL_INTERVAL_SECONDS: '5' },
    });
    this.verifyArchive = new RemediationFunction(this, 'VerifyArchive', {
      entryName: 'verify-archive',
      prefix,
      description:
        'Runbook §5C: verifies every archived WAL segment in S3 (size and SHA-256), independent of the host',
      timeout: Duration.minutes(5),
      memorySize: 512,
    });

    this.grantExpandVolume(this.expandVolume.role, prefix);
    grantPreExpansionSnapshotRetention(this.expandVolume.role, prefix);
    this.grantDescribeModifications(this.waitForModification.role);
    this.grantVerifyArchive(this.verifyArchive.role, archive);

    // --- Command documents ---------------------------------------------------------------------
    const commands = {} as Record<CommandDocumentName, CommandDocument>;
    for (const name of COMMAND_DOCUMENTS)
      commands[name] = new CommandDocument(this, `Host${name}`, { prefix, name });
    restrictFstabFile(commands.MigrateDataVolume, FSTAB_FILE);
    this.commandDocuments = commands;

    // --- Automation documents ------------------------------------------------------------------
    const substitutions: Record<string, string> = {
      Prefix: prefix,
      AutomationRoleArn: this.automationRole.roleArn,
      TopicArn: topic.topicArn,
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
      ArchiveBucket: archive.bucket.bucketName,
      ExpandVolumeFunctionName: this.expandVolume.function.functionName,
      WaitForModificationFunctionName: this.waitForModification.function.functionName,
      VerifyArchiveFunctionName: this.verifyArchive.function.functionName,
      GrowPercent: String(config.expansion.growPercent),
      MinGrowGiB: String(config.expansion.minGrowGiB),
      MaxSizeGiB: String(config.expansion.maxSizeGiB),
      VolumeLimits: JSON.stringify(VOLUME_LIMITS),
      VolumeKeyArn: volumeKey.keyArn,
    };
    const automations = {} as Record<AutomationDocumentName, AutomationDocument>;
    for (const name of AUTOMATION_DOCUMENTS) {
      automations[name] = new AutomationDocument(this, `Automation${name}`, {
        prefix,
        name,
        substitutions: substitutionsUsedBy(name, substitutions),
      });
    }
    this.automationDocuments = automations;

    this.grantAutomationRole(automationRole, props, commands, automations);
    this.grantDataVolumeMigration(automationRole.role, prefix, volumeKey);

    // --- Alarm router --------------------------------------------------------------------------
    const routes = routesFor(config);
    // The kill switch: the router reads it at each invocation (missing or invalid = observe).
    // CloudFormation sets it only when remediation.mode changes; `aws ssm put-parameter` flips it.
    this.modeParameter = new ssm.StringParameter(this, 'AutomationMode', {
      parameterName: automationModeParameterName(prefix),
      stringValue: config.remediation.mode,
      allowedPattern: '^(act|observe|off)$',
      description: `${prefix} disk automation: act (start documents), observe (notify what would run) or off`,
    });
    this.router = new RemediationFunction(this, 'AlarmRouter', {
      entryName: 'alarm-router',
      prefix,
      description:
        'Starts the configured runbook Automation when a disk alarm fires; re-checks alarms that stay in ALARM',
      timeout: Duration.minutes(1),
      // One invocation at a time: "at most one remediation per node" is check-then-start.
      reservedConcurrentExecutions: 1,
      environment: {
        PREFIX: prefix,
        ROUTES: JSON.stringify(routes),
        MODE_PARAMETER: automationModeParameterName(prefix),
        AUTOMATION_ROLE_ARN: this.automationRole.roleArn,
        TOPIC_ARN: topic.topicArn,
        NODE_PARAMETER_PREFIX: `/${prefix}/nodes/`,
        // Events of another account or region start nothing (checked against these).
        ACCOUNT_ID: Stack.of(this).account,
        REGION: Stack.of(this).region,
      },
    });
    // Lambda's async defaults keep an event up to 6 h and retry twice. An alarm event older than a
    // few minutes is superseded by the re-check (which starts the first document when an event was
    // missed), so it is dropped; retries stay: a retried event or re-check cannot start anything
    // twice (the alarm's state and the transition's tagged executions are read again, the node
    // must be idle, and each start's ClientToken is derived from alarm, transition and document),
    // and they recover transient faults within the event's age instead of a re-check later.
    this.router.function.configureAsyncInvoke({
      maxEventAge: ROUTER_MAX_EVENT_AGE,
      retryAttempts: 2,
    });
    this.grantRouter(automationRole, props, routes);

    // Alarm events EventBridge could not hand to the router land here (and raise an alarm).
    const deadLetterQueue = new sqs.Queue(this, 'RouterDeadLetters', {
      queueName: `${prefix}-disk-router-dead-letters`,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This queue is itself the dead-letter queue of the router rules; an alarm watches its depth.',
    });

    new events.Rule(this, 'AlarmStateChange', {
      ruleName: `${prefix}-disk-alarm-to-automation`,
      description: `${prefix} disk alarms entering ALARM start the configured runbook automation`,
      eventPattern: {
        source: ['aws.cloudwatch'],
        detailType: ['CloudWatch Alarm State Change'],
        detail: { alarmName: [{ prefix: `${prefix}-` }], state: { value: ['ALARM'] } },
      },
      targets: [
        new targets.LambdaFunction(this.router.function, {
          // Handing the event to Lambda: no later than the router would still take it.
          retryAttempts: 4,
          maxEventAge: ROUTER_MAX_EVENT_AGE,
          deadLetterQueue,
        }),
      ],
    });
    new events.Rule(this, 'Recheck', {
      ruleName: `${prefix}-disk-alarm-recheck`,
      description: `${prefix}: alarms that stay in ALARM get the next runbook step (alarm actions fire on state change only)`,
      schedule: events.Schedule.rate(Duration.minutes(config.remediation.recheckMinutes)),
      targets: [
        new targets.LambdaFunction(this.router.function, {
          retryAttempts: 2,
          maxEventAge: Duration.minutes(10),
          deadLetterQueue,
        }),
      ],
    });

    this.healthAlarms = new AutomationHealthAlarms(this, 'HealthAlarms', {
      prefix,
      topic,
      deadLetterQueue,
      functions: {
        'alarm-router': this.router.function,
        'expand-volume': this.expandVolume.function,
        'wait-for-volume-modification': this.waitForModification.function,
        'verify-archive': this.verifyArchive.function,
      },
    });
  }

  /**
   * ModifyVolume and CreateSnapshot only on volumes tagged managed AND of this deployment (the
   * managed tag alone is the same in every deployment of the account); the node registry, to refuse
   * an instance that is not a registered node; describes are account-wide reads.
   */
  private grantExpandVolume(role: iam.Role, prefix: string): void {
    const stack = Stack.of(this);
    const volumes = stack.formatArn({ service: 'ec2', resource: 'volume', resourceName: '*' });
    const snapshots = stack.formatArn({
      service: 'ec2',
      resource: 'snapshot',
      resourceName: '*',
      account: '',
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeVolumesAndModifications',
        actions: ['ec2:DescribeVolumes', 'ec2:DescribeVolumesModifications'],
        resources: ['*'],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ModifyAndSnapshotManagedVolumesOnly',
        actions: ['ec2:ModifyVolume', 'ec2:CreateSnapshot'],
        resources: [volumes],
        conditions: {
          StringEquals: {
            [`aws:ResourceTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE,
            [`aws:ResourceTag/${DEPLOYMENT_TAG_KEY}`]: prefix,
          },
        },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CreateManagedSnapshotsOnly',
        actions: ['ec2:CreateSnapshot'],
        resources: [snapshots],
        conditions: {
          StringEquals: {
            [`aws:RequestTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE,
            [`aws:RequestTag/${DEPLOYMENT_TAG_KEY}`]: prefix,
          },
        },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadNodeRegistry',
        actions: ['ssm:GetParameter'],
        resources: [
          stack.formatArn({
            service: 'ssm',
            resource: 'parameter',
            resourceName: nodeRegistryParameterName(prefix, '*').slice(1),
          }),
        ],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'TagSnapshotsAtCreation',
        actions: ['ec2:CreateTags'],
        resources: [snapshots],
        conditions: { StringEquals: { 'ec2:CreateAction': 'CreateSnapshot' } },
      }),
    );
    acknowledgeWildcard(
      role,
      'Resource::*',
      'EC2 Describe* actions do not support resource-level permissions; they only read.',
    );
    acknowledgeWildcard(
      role,
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*',
      `Volume IDs are only known at run time; ModifyVolume and CreateSnapshot are limited by the conditions aws:ResourceTag/${MANAGED_TAG_KEY}=true and aws:ResourceTag/${DEPLOYMENT_TAG_KEY}=${prefix}.`,
    );
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${prefix}/nodes/*`,
      'The node registry: one parameter per node, named by the node; expand-volume reads only this prefix, to refuse an instance that is not a registered node.',
    );
    acknowledgeWildcard(
      role,
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*',
      'A new snapshot has no ID before it exists; creation requires the managed tag in the request and tagging is allowed only as part of CreateSnapshot.',
    );
  }

  /**
   * Runbook §5B for the automation role: AddDataVolume creates, tags and attaches a volume and
   * marks volumes replaced or migration-failed; RetireDataVolume tags and detaches a replaced one.
   * Creation only with the managed, deployment, node and replaces tags in the request, encrypted;
   * tagging at creation only as part of CreateVolume; attaching only managed volumes to managed
   * instances of this deployment; re-tagging only this deployment's managed (or migration-failed)
   * volumes, only the migration's own keys, only to `replaced`, `migration-failed` or back to
   * `true` (a resumed migration); detaching only volumes marked replaced, from managed
   * instances. KMS: what EBS uses on the caller's behalf for a
   * volume encrypted with the stack key (EBS user guide, "Requirements for Amazon EBS
   * encryption": CreateGrant, Decrypt, DescribeKey, GenerateDataKeyWithoutPlainText, ReEncrypt),
   * only through EC2, grants only for AWS resources.
   */
  private grantDataVolumeMigration(role: iam.Role, prefix: string, key: kms.IKey): void {
    const stack = Stack.of(this);
    const volumes = stack.formatArn({ service: 'ec2', resource: 'volume', resourceName: '*' });
    const instances = stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
    const ofThisDeployment = (managed: string) => ({
      [`aws:ResourceTag/${MANAGED_TAG_KEY}`]: managed,
      [`aws:ResourceTag/${DEPLOYMENT_TAG_KEY}`]: prefix,
    });
    const viaEc2 = { 'kms:ViaService': `ec2.${stack.region}.amazonaws.com` };
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'MigrationReadsInstancesAndVolumes',
        actions: ['ec2:DescribeInstances', 'ec2:DescribeVolumes'],
        resources: ['*'],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'MigrationReadsNodeRegistry',
        actions: ['ssm:GetParameter'],
        resources: [
          stack.formatArn({
            service: 'ssm',
            resource: 'parameter',
            resourceName: nodeRegistryParameterName(prefix, '*').slice(1),
          }),
        ],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CreateManagedEncryptedVolumesOnly',
        actions: ['ec2:CreateVolume'],
        resources: [volumes],
        conditions: {
          StringEquals: {
            [`aws:RequestTag/${MANAGED_TAG_KEY}`]: MANAGED_TAG_VALUE,
            [`aws:RequestTag/${DEPLOYMENT_TAG_KEY}`]: prefix,
          },
          Null: {
            [`aws:RequestTag/${NODE_TAG_KEY}`]: 'false',
            [`aws:RequestTag/${REPLACES_TAG_KEY}`]: 'false',
          },
          Bool: { 'ec2:Encrypted': 'true' },
        },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'TagVolumesAtCreation',
        actions: ['ec2:CreateTags'],
        resources: [volumes],
        conditions: { StringEquals: { 'ec2:CreateAction': 'CreateVolume' } },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'AttachManagedVolumesToManagedInstancesOnly',
        actions: ['ec2:AttachVolume'],
        resources: [instances, volumes],
        conditions: { StringEquals: ofThisDeployment(MANAGED_TAG_VALUE) },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'MarkManagedVolumesReplacedOrFailed',
        actions: ['ec2:CreateTags'],
        resources: [volumes],
        conditions: {
          StringEquals: {
            [`aws:ResourceTag/${MANAGED_TAG_KEY}`]: [MANAGED_TAG_VALUE, 'migration-failed'],
            [`aws:ResourceTag/${DEPLOYMENT_TAG_KEY}`]: prefix,
            [`aws:RequestTag/${MANAGED_TAG_KEY}`]: [MANAGED_TAG_VALUE, 'replaced', 'migration-failed'],
          },
          'ForAllValues:StringEquals': {
            'aws:TagKeys': [
              MANAGED_TAG_KEY,
              'stemedb:replaced-by',
              'stemedb:replaced-at',
              'stemedb:migration-result',
            ],
          },
        },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'MarkReplacedVolumesRetired',
        actions: ['ec2:CreateTags'],
        resources: [volumes],
        conditions: {
          StringEquals: ofThisDeployment('replaced'),
          'ForAllValues:StringEquals': { 'aws:TagKeys': ['stemedb:retired-at'] },
        },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DetachReplacedVolumesOnly',
        actions: ['ec2:DetachVolume'],
        resources: [volumes],
        conditions: { StringEquals: ofThisDeployment('replaced') },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DetachFromManagedInstancesOnly',
        actions: ['ec2:DetachVolume'],
        resources: [instances],
        conditions: { StringEquals: ofThisDeployment(MANAGED_TAG_VALUE) },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'EbsUsesTheVolumeKeyThroughEc2',
        actions: [
          'kms:Decrypt',
          'kms:DescribeKey',
          'kms:GenerateDataKeyWithoutPlaintext',
          'kms:ReEncryptFrom',
          'kms:ReEncryptTo',
        ],
        resources: [key.keyArn],
        conditions: { StringEquals: viaEc2 },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'EbsGrantsOnTheVolumeKeyOnly',
        actions: ['kms:CreateGrant'],
        resources: [key.keyArn],
        conditions: { StringEquals: viaEc2, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      }),
    );
    acknowledgeWildcard(
      role,
      'Resource::*',
      'ec2:DescribeInstances and ec2:DescribeVolumes have no resource-level permissions; they only read.',
    );
    acknowledgeWildcard(
      role,
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*',
      `Volume IDs are only known at run time: CreateVolume needs the ${MANAGED_TAG_KEY}, ${DEPLOYMENT_TAG_KEY}, ${NODE_TAG_KEY} and ${REPLACES_TAG_KEY} tags in the request and encryption; tagging at creation only with CreateVolume; attaching, re-tagging and detaching only volumes tagged by this deployment (managed, or replaced for the detach).`,
    );
    acknowledgeWildcard(
      role,
      'Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*',
      `AttachVolume and DetachVolume only on instances tagged ${MANAGED_TAG_KEY}=true and ${DEPLOYMENT_TAG_KEY}=${prefix}.`,
    );
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${prefix}/nodes/*`,
      'The node registry: AddDataVolume checks that the instance and its volume are the registered node.',
    );
  }

  private grantDescribeModifications(role: iam.Role): void {
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DescribeVolumeModifications',
        actions: ['ec2:DescribeVolumes', 'ec2:DescribeVolumesModifications'],
        resources: ['*'],
      }),
    );
    acknowledgeWildcard(
      role,
      'Resource::*',
      'DescribeVolumes and DescribeVolumesModifications do not support resource-level permissions; they only read.',
    );
  }

  /**
   * verify-archive reads any node's archive and writes verified manifests; the bucket refuses a
   * verified manifest from anyone else, so a host can never vouch for its own uploads.
   */
  private grantVerifyArchive(role: iam.Role, archive: WalArchiveBucket): void {
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadArchivedWal',
        actions: ['s3:GetObject'],
        resources: [archive.bucket.arnForObjects('wal/*')],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        // Without ListBucket a missing key answers 403 instead of 404.
        sid: 'ListArchivedWal',
        actions: ['s3:ListBucket'],
        resources: [archive.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': ['wal/*'] } },
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteVerifiedManifests',
        actions: ['s3:PutObject'],
        resources: [archive.bucket.arnForObjects(VERIFIED_MANIFEST_KEYS)],
      }),
    );
    for (const s of archive.keyStatements()) role.addToPolicy(s);
    archive.onlyVerifierWritesVerifiedManifests(role, VERIFIED_MANIFEST_KEYS);
    const bucketArn = nagArn(archive.bucket.node.defaultChild as CfnResource);
    acknowledgeWildcard(
      role,
      `Resource::${bucketArn}/wal/*`,
      "The verifier reads any node's archived segments and manifests; keys are only known at run time.",
    );
    acknowledgeWildcard(
      role,
      `Resource::${bucketArn}/${VERIFIED_MANIFEST_KEYS}`,
      'One verified manifest per node prefix; the bucket policy denies this key to every other principal.',
    );
  }

  private grantAutomationRole(
    automationRole: AutomationRole,
    props: DiskRemediationProps,
    commands: Record<CommandDocumentName, CommandDocument>,
    automations: Record<AutomationDocumentName, AutomationDocument>,
  ): void {
    const role = automationRole.role;
    const stack = Stack.of(this);
    for (const fn of [this.expandVolume, this.waitForModification, this.verifyArchive])
      fn.function.grantInvoke(role);
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'RunThisStacksCommandDocuments',
        actions: ['ssm:SendCommand'],
        resources: Object.values(commands).map((c) => c.documentArn),
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
    props.topic.grantPublish(role);
    // Only the documents some document starts as a child (aws:executeAutomation): ExpandVolume
    // falls back to ArchiveWal, the cleanups start ArchiveWal and ExpandVolume.
    const children = childAutomations(automations);
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
    acknowledgeTopicKeyUse(role);
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
    for (const fn of [this.expandVolume, this.waitForModification, this.verifyArchive]) {
      acknowledgeWildcard(
        role,
        `Resource::${nagArn(fn.function.node.defaultChild as CfnResource)}:*`,
        "CDK grantInvoke also allows the function's versions and aliases; the function itself is this stack's.",
      );
    }
  }

  private grantRouter(automationRole: AutomationRole, props: DiskRemediationProps, routes: RouteTable): void {
    const stack = Stack.of(this);
    const role = this.router.role;
    const { prefix } = props.config;
    const byName = new Map(Object.values(this.automationDocuments).map((d) => [d.documentName, d]));
    const routed = [...new Set(Object.values(routes).flat())].map((name) => {
      const doc = byName.get(name);
      if (doc === undefined)
        throw new Error(`DiskRemediation routes name ${name}, which this stack does not deploy`);
      return doc.documentName;
    });
    if (routed.length > 0) {
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'StartRoutedAutomationsOnly',
          actions: ['ssm:StartAutomationExecution'],
          resources: startAutomationResources(stack, routed),
        }),
      );
      acknowledgeStartAutomationVersions(role, routed);
    }
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'TagAndReadExecutions',
        actions: ['ssm:AddTagsToResource', 'ssm:ListTagsForResource', 'ssm:GetAutomationExecution'],
        resources: [stack.formatArn({ service: 'ssm', resource: 'automation-execution', resourceName: '*' })],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ListRunningExecutions',
        actions: ['ssm:DescribeAutomationExecutions'],
        resources: ['*'],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadNodeRegistry',
        actions: ['ssm:GetParameter'],
        resources: [
          stack.formatArn({
            service: 'ssm',
            resource: 'parameter',
            resourceName: nodeRegistryParameterName(prefix, '*').slice(1),
          }),
        ],
      }),
    );
    const alarms = stack.formatArn({
      service: 'cloudwatch',
      resource: 'alarm',
      resourceName: `${prefix}-*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAndMarkThisStacksAlarms',
        actions: ['cloudwatch:ListTagsForResource', 'cloudwatch:TagResource'],
        resources: [alarms],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        // The re-check lists `<prefix>-` alarms in ALARM with AlarmTypes [MetricAlarm,
        // CompositeAlarm]. The CloudWatch API reference (DescribeAlarms): returning composite alarms
        // needs cloudwatch:DescribeAlarms scoped to *; with a narrower scope the call cannot return
        // them. The prefix filter is in the request, not in the policy.
        sid: 'ListAlarmsInAlarm',
        actions: ['cloudwatch:DescribeAlarms'],
        resources: ['*'],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAutomationMode',
        actions: ['ssm:GetParameter'],
        resources: [this.modeParameter.parameterArn],
      }),
    );
    props.topic.grantPublish(role);
    automationRole.grantPassToSsm(role);
    acknowledgeWildcard(
      role,
      'Resource::*',
      'ssm:DescribeAutomationExecutions has no resource-level permissions, and cloudwatch:DescribeAlarms must be scoped to * to return composite alarms (CloudWatch API reference); both only read.',
    );
    acknowledgeWildcard(
      role,
      'Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-execution/*',
      "Execution IDs are only known at run time: StartAutomationExecution is authorized on the new execution's ARN (with the routed documents only); the router tags the executions it starts and reads their tags and status.",
    );
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${prefix}/nodes/*`,
      'The node registry: one parameter per node, named by the node; the router reads only this prefix.',
    );
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:${prefix}-*`,
      "Only this stack's alarms (named <prefix>-<node>-disk-<kind>); nodes are added without changing the router.",
    );
    acknowledgeTopicKeyUse(role);
  }
}

/**
 * The resources `ssm:StartAutomationExecution` of `documentNames` is authorized on, in every form
 * AWS checks. Evidence:
 * - the Service Authorization Reference lists three resource types for the action:
 *   `document/<name>` (required), `automation-execution/<id>` (required) and
 *   `automation-definition/<name>:<VersionId>` (optional);
 * - AccessDenied messages reported publicly name the definition with a version NUMBER, e.g.
 *   `... is not authorized to perform: ssm:StartAutomationExecution on resource:
 *   arn:aws:ssm:ap-southeast-1::automation-definition/AWS-DisablePublicAccessForSecurityGroup:1`
 *   (aws-solutions/automated-security-response-on-aws issues 26 and 29), so `:$DEFAULT` alone is
 *   not what AWS compares against;
 * - the Systems Manager user guide ("Setting up identity based policies examples", example 1)
 *   grants StartAutomationExecution on `document/<name>` and `automation-execution/*`.
 * Hence: the document, every version of its definition (`:*` matches `:1`, `:$DEFAULT` and
 * `:$LATEST`), and the execution the call creates (IDs are only known at run time). Every resource
 * of a request must be allowed, so `automation-execution/*` does not let a foreign document start.
 */
export function startAutomationResources(stack: Stack, documentNames: readonly string[]): string[] {
  return [
    ...documentNames.map((name) =>
      stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name }),
    ),
    ...documentNames.map((name) =>
      stack.formatArn({ service: 'ssm', resource: 'automation-definition', resourceName: `${name}:*` }),
    ),
    stack.formatArn({ service: 'ssm', resource: 'automation-execution', resourceName: '*' }),
  ];
}

/** The documents that `aws:executeAutomation` steps start, each checked to be one of `automations`. */
function childAutomations(automations: Record<AutomationDocumentName, AutomationDocument>): string[] {
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

/** The `automation-definition/<name>:*` wildcard of {@link startAutomationResources}, per document. */
function acknowledgeStartAutomationVersions(role: iam.IRole, documentNames: readonly string[]): void {
  for (const name of documentNames) {
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-definition/${name}:*`,
      `Every version of this stack's ${name} definition: AWS authorizes StartAutomationExecution on the resolved version (e.g. :1), not on :$DEFAULT.`,
    );
  }
}

/** SNS `grantPublish` on a KMS-encrypted topic grants `kms:GenerateDataKey*` on its key. */
function acknowledgeTopicKeyUse(role: iam.IRole): void {
  acknowledgeWildcard(
    role,
    'Action::kms:GenerateDataKey*',
    'Publishing to the KMS-encrypted notification topic needs data keys of the stack key (CDK grantPublish); the resource is that one key.',
  );
}

/** Where verify-archive writes what it verified: `wal/<node>/_manifest/verified.json`. */
const VERIFIED_MANIFEST_KEYS = `wal/*/${VERIFIED_MANIFEST_NAME}`;

/**
 * The router's chains, alarm kind → documents, passed to it as `ROUTES`: the one routing table
 * ({@link routeTable} in lambda/shared/alarm-event.ts, which the router's tests run with).
 */
export function routesFor(config: StemeDbConfig): RouteTable {
  return routeTable(config.prefix, config.remediation);
}

/** The kill switch's SSM parameter: `/<prefix>/automation-mode`. */
export function automationModeParameterName(prefix: string): string {
  return `/${prefix}/automation-mode`;
}

/** How late an event may reach the router (EventBridge delivery, then Lambda's async queue). */
const ROUTER_MAX_EVENT_AGE = Duration.minutes(5);

/** The substitutions a document's YAML actually uses (the document construct rejects unused ones). */
function substitutionsUsedBy(name: string, all: Record<string, string>): Record<string, string> {
  const file = resolve(REPO_ROOT, defaultAutomationDefinitionFile(name));
  const used = placeholdersIn(parseYaml(readFileSync(file, 'utf8')));
  return Object.fromEntries(Object.entries(all).filter(([k]) => used.has(k)));
}
