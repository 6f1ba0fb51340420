import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import type { AutomationDocumentName, CommandDocumentName } from '../contracts/sections';
import type { AlarmRouterFunction } from './alarm-router-function';
import { buildAlarmRouting } from './alarm-routing';
import type { AutomationDocument } from './automation-document';
import { AutomationHealthAlarms } from './automation-health-alarms';
import { AutomationRole } from './automation-role';
import type { CommandDocument } from './command-document';
import type { StemeDbConfig } from './config';
import type { RemediationFunction } from './remediation-function';
import { buildSectionFunctions, type SectionFunctions } from './remediation-functions';
import { buildRunbookDocuments } from './runbook-documents';
import type { WalArchiveBucket } from './wal-archive-bucket';

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

/**
 * The remediation machinery shared by every node, composed from its parts: the role the runbook's
 * documents run as ({@link AutomationRole}), the Lambdas of the sections
 * (lib/remediation-functions.ts), the sections' Command and Automation documents
 * (lib/runbook-documents.ts), both built from the section registry (contracts/sections.ts), the
 * alarm router with its kill switch, rules and dead-letter queue (lib/alarm-routing.ts), and the
 * alarms on the automation itself ({@link AutomationHealthAlarms}). Each part grants what it needs
 * next to it, scoped to this stack's documents and functions and to resources tagged
 * `stemedb:managed=true` of this deployment.
 *
 * Every part adds its resources directly to this construct, under the IDs they have always had,
 * so the template of a deployed stack keeps its logical IDs (named documents, functions and log
 * groups cannot be replaced in place).
 */
export class DiskRemediation extends Construct {
  public readonly automationRole: iam.Role;
  public readonly commandDocuments: Readonly<Record<CommandDocumentName, CommandDocument>>;
  public readonly automationDocuments: Readonly<Record<AutomationDocumentName, AutomationDocument>>;
  /** The sections' Lambdas by handler name (`expand-volume`, …). */
  public readonly sectionFunctions: SectionFunctions;
  public readonly expandVolume: RemediationFunction;
  public readonly waitForModification: RemediationFunction;
  public readonly verifyArchive: RemediationFunction;
  public readonly router: AlarmRouterFunction;
  /** Where events the router could not be handed land (EventBridge targets, the Prometheus topic's subscription). */
  public readonly routerDeadLetterQueue: sqs.IQueue;
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

    this.sectionFunctions = buildSectionFunctions(this, { config, archive });
    this.expandVolume = this.sectionFunctions['expand-volume'];
    this.waitForModification = this.sectionFunctions['wait-for-volume-modification'];
    this.verifyArchive = this.sectionFunctions['verify-archive'];

    const documents = buildRunbookDocuments(this, {
      config,
      automationRole,
      topic,
      archive,
      volumeKey,
      functions: this.sectionFunctions,
    });
    this.commandDocuments = documents.commandDocuments;
    this.automationDocuments = documents.automationDocuments;

    const routing = buildAlarmRouting(this, {
      config,
      deployedAutomations: Object.values(this.automationDocuments).map((d) => d.documentName),
      automationRole,
      topic,
    });
    this.modeParameter = routing.modeParameter;
    this.router = routing.router;
    this.routerDeadLetterQueue = routing.deadLetterQueue;

    this.healthAlarms = new AutomationHealthAlarms(this, 'HealthAlarms', {
      prefix,
      topic,
      deadLetterQueue: routing.deadLetterQueue,
      functions: {
        'alarm-router': this.router.function,
        ...Object.fromEntries(Object.entries(this.sectionFunctions).map(([name, fn]) => [name, fn.function])),
      },
    });
  }
}
