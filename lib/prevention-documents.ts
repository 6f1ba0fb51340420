import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { CommandDocument } from './command-document';
import { DEFAULT_CONFIG, type PreventionConfig, preventionProblems } from './config';

/** SSM associations accept at most 50 instance IDs per target. */
const MAX_INSTANCES_PER_ASSOCIATION = 50;
const INSTANCE_ID = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;

export interface PreventionDocumentsProps {
  /** Name prefix of the documents (`<prefix>-Host-…`), the associations and the journald drop-in. @default 'StemeDB' */
  readonly prefix?: string;
  /** The nodes' instances, which the opted-in associations target. @default none (no association) */
  readonly instanceIds?: readonly string[];
  /** The StemeDB config file StorageSettings edits (the only one it accepts). @default '/etc/stemedb/config.toml' */
  readonly configFile?: string;
  /** systemd unit of StemeDB (the only one StorageSettings restarts). @default 'stemedb-api' */
  readonly serviceName?: string;
  /** StemeDB's health URL (the only one StorageSettings checks). @default 'http://localhost:18180/v1/health' */
  readonly healthUrl?: string;
  /** The settings, and which of the two documents State Manager applies on every node. @default the runbook's values, no association */
  readonly prevention?: PreventionConfig;
}

/**
 * The runbook's "Prevention" on the hosts, as two Command documents and their opt-in State
 * Manager associations:
 * - `<prefix>-Host-JournaldLimits`: the journald drop-in `<prefix>-limits.conf` (SystemMaxUse,
 *   MaxRetentionSec), journald restarted only when it changed;
 * - `<prefix>-Host-StorageSettings`: `[storage]` compaction and `[backup]` retention in
 *   config.toml (WalCleanup's byte-preserving edit), StemeDB not restarted unless asked.
 * The documents' defaults are the configuration's values, and the file, unit, URL and drop-in name
 * they accept are this deployment's only. Run by hand they are dry runs unless `DryRun=false`;
 * an association (when `prevention.<document>.associate`) passes `DryRun=false` and the
 * configured values, targets every node's instance (one association per 50), runs after deploy
 * and then every `prevention.scheduleDays` days, so a setting changed by hand is put back. The
 * host scripts call no AWS API: the SSM agent (AmazonSSMManagedInstanceCore) is all they need.
 */
export class PreventionDocuments extends Construct {
  public readonly journaldLimits: CommandDocument;
  public readonly storageSettings: CommandDocument;
  /** The associations created (none unless the configuration opts in and there are instances). */
  public readonly associations: readonly ssm.CfnAssociation[];

  constructor(scope: Construct, id: string, props: PreventionDocumentsProps = {}) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_CONFIG.prefix;
    const instanceIds = props.instanceIds ?? [];
    const prevention = props.prevention ?? DEFAULT_CONFIG.prevention;
    const configFile = props.configFile ?? DEFAULT_CONFIG.configFile;
    const serviceName = props.serviceName ?? DEFAULT_CONFIG.serviceName;
    const healthUrl = props.healthUrl ?? DEFAULT_CONFIG.healthUrl;
    const problems = preventionProblems(prevention).map((p) => `PreventionDocuments ${p}`);
    for (const [i, instanceId] of instanceIds.entries()) {
      if (!INSTANCE_ID.test(instanceId))
        problems.push(
          `PreventionDocuments instanceIds[${i}] is ${JSON.stringify(instanceId)}; expected an EC2 instance ID such as i-0123456789abcdef0`,
        );
    }
    if (problems.length > 0) throw new Error(problems.join('; '));

    this.journaldLimits = new CommandDocument(this, 'HostJournaldLimits', { prefix, name: 'JournaldLimits' });
    this.storageSettings = new CommandDocument(this, 'HostStorageSettings', {
      prefix,
      name: 'StorageSettings',
    });

    const { journald, storage } = prevention;
    const journaldValues = {
      SystemMaxUse: journald.systemMaxUse,
      MaxRetentionSec: journald.maxRetentionSec,
      DropInName: `${prefix}-limits.conf`,
    };
    const storageValues = {
      ConfigFile: configFile,
      CompactionEnabled: String(storage.compactionEnabled),
      CompactionIntervalHours: String(storage.compactionIntervalHours),
      CompactionThresholdMb: String(storage.compactionThresholdMb),
      BackupRetentionDays: String(storage.backupRetentionDays),
      BackupCompressionEnabled: String(storage.backupCompressionEnabled),
      ServiceName: serviceName,
      HealthUrl: healthUrl,
    };
    setDefaults(this.journaldLimits, journaldValues, ['DropInName']);
    setDefaults(this.storageSettings, storageValues, ['ConfigFile', 'ServiceName', 'HealthUrl']);

    const schedule = prevention.scheduleDays === 1 ? 'rate(1 day)' : `rate(${prevention.scheduleDays} days)`;
    const associations: ssm.CfnAssociation[] = [];
    const associate = (doc: CommandDocument, kebab: string, values: Record<string, string>) => {
      for (let i = 0; i < instanceIds.length; i += MAX_INSTANCES_PER_ASSOCIATION) {
        const n = i / MAX_INSTANCES_PER_ASSOCIATION;
        associations.push(
          new ssm.CfnAssociation(this, `${doc.node.id.replace(/^Host/, '')}Association${n}`, {
            name: doc.resource.ref,
            associationName: `${prefix}-${kebab}-${n}`,
            parameters: Object.fromEntries(
              Object.entries({ ...values, DryRun: 'false' }).map(([k, v]) => [k, [v]]),
            ),
            targets: [
              { key: 'InstanceIds', values: instanceIds.slice(i, i + MAX_INSTANCES_PER_ASSOCIATION) },
            ],
            scheduleExpression: schedule,
            complianceSeverity: 'MEDIUM',
          }),
        );
      }
    };
    if (journald.associate) associate(this.journaldLimits, 'journald-limits', journaldValues);
    if (storage.associate)
      associate(this.storageSettings, 'storage-settings', { ...storageValues, RestartService: 'false' });
    this.associations = associations;
  }
}

/** The prop (or configuration key) each document parameter's value comes from, for errors. */
const PROP_OF: Readonly<Record<string, string>> = {
  SystemMaxUse: 'prevention.journald.systemMaxUse',
  MaxRetentionSec: 'prevention.journald.maxRetentionSec',
  DropInName: 'prefix',
  ConfigFile: 'configFile',
  ServiceName: 'serviceName',
  HealthUrl: 'healthUrl',
};

/**
 * Sets the document's parameter defaults to `values` (each must pass the parameter's own pattern
 * or values), and narrows the `only` parameters to that one value (`allowedValues`), so that whoever
 * may run the document still cannot point it at another file, unit, URL or drop-in.
 */
function setDefaults(
  doc: CommandDocument,
  values: Readonly<Record<string, string>>,
  only: readonly string[],
): void {
  const declared = doc.content.parameters ?? {};
  for (const [name, value] of Object.entries(values)) {
    const spec = declared[name];
    if (spec === undefined)
      throw new Error(`PreventionDocuments: ${doc.documentName} has no ${name} parameter`);
    const fits =
      (spec.allowedPattern === undefined || new RegExp(spec.allowedPattern).test(value)) &&
      (spec.allowedValues === undefined || spec.allowedValues.includes(value));
    if (!fits) {
      throw new Error(
        `PreventionDocuments ${PROP_OF[name] ?? name} gives ${doc.documentName} ${name} ${JSON.stringify(value)}, which the document does not accept (${spec.allowedPattern ?? JSON.stringify(spec.allowedValues)})`,
      );
    }
    doc.resource.addPropertyOverride(`Content.parameters.${name}.default`, value);
    if (only.includes(name))
      doc.resource.addPropertyOverride(`Content.parameters.${name}.allowedValues`, [value]);
  }
}
