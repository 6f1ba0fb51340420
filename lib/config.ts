import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AVAILABILITY_ZONE_PATTERN, INSTANCE_ID_PATTERN, VOLUME_ID_PATTERN } from '../contracts/aws-ids';
import { DEFAULT_PREFIX, NODE_NAME_PATTERN, PREFIX_PATTERN } from '../contracts/deployment';
import { REMEDIATION_SECTIONS } from '../contracts/documents';
import { type EbsVolumeType, VOLUME_LIMITS } from '../contracts/ebs';
import { DEFAULT_EXPANSION, type ExpansionConfig } from '../contracts/expansion';
import { AUTOMATION_MODES, type AutomationMode } from '../contracts/routing';
import { type DiskThresholds, RUNBOOK_THRESHOLDS } from '../contracts/thresholds';
import {
  MAX_NODE_STACKS,
  MAX_NODES_IN_SHARED_STACK,
  MAX_NODES_IN_SHARED_STACK_ALLOWED,
  nodesByShard,
  SHARED_STACK_SHARD,
  shardCapacityProblems,
} from './fleet-shards';
import { thresholdProblems } from './thresholds';

/**
 * The app's configuration, typed and validated in one place.
 *
 * Sources, later wins: the `stemedb` object in `cdk.json` context (or `-c stemedb='{...}'`),
 * then a JSON file given with `-c stemedbConfig=PATH`. Nested objects (`thresholds`,
 * `expansion`, `wal`, `snapshots`, `archive`, `remediation`, `prevention` and its `journald` and
 * `storage`) merge key by key; `nodes` and `notifyEmails` are replaced whole.
 */

/** A data volume the stack creates and owns (but never deletes: it is retained). */
export interface NewDataVolumeConfig {
  /** Size in GiB, within the type's limits. */
  readonly sizeGiB: number;
  /** @default 'gp3' */
  readonly type: EbsVolumeType;
  /** Provisioned IOPS (gp3, io1, io2 only). @default type's baseline (gp3: 3000) */
  readonly iops?: number;
  /** Throughput in MiB/s (gp3 only). @default 125 */
  readonly throughput?: number;
  /** Device name the volume is attached as. @default '/dev/sdf' */
  readonly deviceName: string;
}

/** One StemeDB node. */
export interface NodeConfig {
  /** Short name, used in resource names, tags and alarm names. */
  readonly name: string;
  /** The EC2 instance the node runs on. */
  readonly instanceId: string;
  /** The instance's Availability Zone; the data volume is created there. */
  readonly availabilityZone: string;
  /** A volume the stack creates, attaches and owns. Exactly one of this and `existingVolumeId`. */
  readonly dataVolume?: NewDataVolumeConfig;
  /** A volume that already exists: tagged and alarmed, never owned or deleted. */
  readonly existingVolumeId?: string;
  /**
   * The shard (stack) that holds the node's resources: 0 is the shared stack `<prefix>-Disk`,
   * 1..`fleet.shards` the node stacks `<prefix>-Disk-Nodes-<shard>`. Once the node is deployed
   * its shard must never change (that would replace its data volume).
   * @default 0 when `fleet.shards` is 0, else `1 + fnv1a32(name) mod fleet.shards` (lib/fleet-shards.ts)
   */
  readonly shard?: number;
}

/**
 * How nodes are spread over stacks (lib/fleet-shards.ts has the rule). A node's shard is its
 * explicit `shard`, else 0 (the shared stack) while `shards` is 0, else a hash of its name into
 * 1..`shards`: it depends on nothing but the node, so adding a node never moves another. Do not
 * change `shards` once node stacks are deployed: it re-hashes every node without an explicit
 * `shard` (the shard lock, `-c stemedbShardLock=FILE`, refuses such a change naming each node).
 */
export interface FleetConfig {
  /** Node stacks (`<prefix>-Disk-Nodes-1..shards`); 0 keeps every node in the shared stack. @default 0 */
  readonly shards: number;
  /**
   * Most nodes in the shared stack (shard 0), 1 to 30. The default keeps its template under
   * 800 KB with every optional part; a deployment from before shards with up to 30 nodes in its
   * one stack sets its node count here, so no deployed node has to move (lib/fleet-shards.ts).
   * @default 16
   */
  readonly sharedStackNodes: number;
}

/** WAL retention and archival (runbook §2 and §5C). */
export interface WalConfig {
  /** `[wal] retention_days` the WalCleanup document sets. @default 7 */
  readonly retentionDays: number;
  /** Segments older than this are archived to S3 by the warning alarm's automation. @default 30 */
  readonly archiveAfterDays: number;
  /** `[wal] max_segments`. @default 100 */
  readonly maxSegments: number;
  /** `[wal] segment_size_mb`. @default 64 */
  readonly segmentSizeMb: number;
}

/** Data Lifecycle Manager snapshots of every managed data volume. */
export interface SnapshotConfig {
  /** How many daily snapshots to keep. @default 7 (the runbook keeps 7 daily backups) */
  readonly retainCount: number;
  /** Time of day (UTC, HH:MM) the daily snapshot starts. @default '03:00' */
  readonly timeUtc: string;
}

/** The WAL archive bucket. */
export interface ArchiveConfig {
  /** Days before archived WAL moves to Glacier Instant Retrieval. @default 30 */
  readonly transitionAfterDays: number;
  /** Days before a noncurrent object version is expired. @default 90 */
  readonly noncurrentExpireDays: number;
  /** Object Lock (governance mode) retention in days; 0 turns Object Lock off. @default 0 */
  readonly objectLockDays: number;
}

/** Runbook "Prevention": the journald limits drop-in (`<prefix>-Host-JournaldLimits`). */
export interface JournaldPreventionConfig {
  /** journald `SystemMaxUse`: digits and K, M, G or T, from 16M to 16T. @default '500M' (the runbook) */
  readonly systemMaxUse: string;
  /** journald `MaxRetentionSec`: digits and s, min, h, day, week, month or year, 1 hour to 10 years. @default '7day' */
  readonly maxRetentionSec: string;
  /** Apply it on every node with a State Manager association (else the document is run by hand). @default false */
  readonly associate: boolean;
}

/** Runbook "Prevention": `[storage]` compaction and `[backup]` retention in config.toml (`<prefix>-Host-StorageSettings`). */
export interface StoragePreventionConfig {
  /** `[storage] compaction_enabled`. @default true */
  readonly compactionEnabled: boolean;
  /** `[storage] compaction_interval_hours`. @default 24 */
  readonly compactionIntervalHours: number;
  /** `[storage] compaction_threshold_mb`. @default 1000 */
  readonly compactionThresholdMb: number;
  /** `[backup] retention_days`. @default 7 */
  readonly backupRetentionDays: number;
  /** `[backup] compression_enabled`. @default true */
  readonly backupCompressionEnabled: boolean;
  /** Apply it on every node with a State Manager association (never restarting StemeDB). @default false */
  readonly associate: boolean;
}

/** The runbook's "Prevention" settings on the hosts; each association is opt-in. */
export interface PreventionConfig {
  readonly journald: JournaldPreventionConfig;
  readonly storage: StoragePreventionConfig;
  /** Days between two runs of an association (it also runs right after deploy). @default 1 */
  readonly scheduleDays: number;
}

/** Which automation an alarm starts. */
export interface RemediationConfig {
  /** Document section the warning alarm starts ('' for none). @default 'ArchiveWal' */
  readonly warning: string;
  /** Document section the critical alarm starts ('' for none). @default 'ExpandVolume' */
  readonly critical: string;
  /** Document section the emergency-space alarm (< 5% free) starts ('' for none). @default 'EmergencyCleanup' */
  readonly emergencySpace: string;
  /** Document section the inode alarms (inode-warning, emergency-inodes) start ('' for none). @default 'InodeCleanup' */
  readonly inodes: string;
  /** Document section the Prometheus-only "fills within N hours" alert starts ('' for none). @default 'ArchiveWal' */
  readonly fillsSoon: string;
  /** Minutes between re-checks of alarms that stay in ALARM. @default 15 */
  readonly recheckMinutes: number;
  /**
   * When ExpandVolume is refused or deferred (the modification rate limit, a partition table or
   * filesystem that cannot grow, the size cap), also start `AddDataVolume` (runbook §5B: a new
   * volume, the data moved to it) after the WAL archive fallback. Off by default because the
   * migration stops the service for its final copy; the default stays archive and notify. The new
   * volume is sized by the same policy, so a refusal at `expansion.maxSizeGiB` is refused again
   * (raise the cap to migrate past it). Operators can still run AddDataVolume by hand.
   * @default false
   */
  readonly migrateWhenRefused: boolean;
  /**
   * Remediations the router runs at once, fleet-wide (1 to 100): one slot each in the router's
   * lock table; the rest wait in ALARM and the re-check starts them oldest transition first, so
   * an incident on hundreds of nodes stays under SSM's concurrent-automation quota and EC2's API
   * rates. @default 10
   */
  readonly maxConcurrent: number;
  /**
   * The kill switch's initial value (the SSM parameter `/<prefix>/automation-mode`, which the
   * router reads at each invocation, so operators flip it without a deploy): `act` starts the
   * routed documents; `observe` starts nothing, logs each decision as `observed` with the document
   * it would have started and notifies the topic once per transition; `off` starts nothing and
   * notifies nothing (decisions logged as `automation-off`; the alarms' own notifications still go
   * out). A missing or invalid parameter value is read as `observe`. @default 'act'
   */
  readonly mode: AutomationMode;
}

export interface StemeDbConfig {
  /** Prefix of document, alarm and resource names. @default 'StemeDB' */
  readonly prefix: string;
  /** @default '/data' */
  readonly dataMount: string;
  /** @default '/data/wal' */
  readonly walDir: string;
  /** @default '/data/db' */
  readonly dbDir: string;
  /** @default '/backups' */
  readonly backupDir: string;
  /**
   * The StemeDB config file on each node, the only file `WalCleanup` edits (its `[wal]` section,
   * as root). An absolute path like the directory keys, outside `walDir` and `dbDir`.
   * @default '/etc/stemedb/config.toml'
   */
  readonly configFile: string;
  /**
   * The fstab on each node, the only file outside the data mount `MigrateDataVolume` edits (the
   * data mount's entry, switched to the new volume by UUID; the document's `FstabFile` accepts
   * only this path). An absolute path like the other path keys, outside `dataMount` (the migration
   * unmounts it) and not `configFile`. @default '/etc/fstab'
   */
  readonly fstabFile: string;
  /** systemd unit of the database. @default 'stemedb-api' */
  readonly serviceName: string;
  /** @default 'http://localhost:18180/v1/health' */
  readonly healthUrl: string;
  /** @default the runbook's numbers ({@link RUNBOOK_THRESHOLDS}) */
  readonly thresholds: DiskThresholds;
  readonly expansion: ExpansionConfig;
  readonly wal: WalConfig;
  readonly snapshots: SnapshotConfig;
  readonly archive: ArchiveConfig;
  readonly remediation: RemediationConfig;
  /** @default the runbook's values, no association */
  readonly prevention: PreventionConfig;
  /** Email addresses subscribed to the notification topic. @default [] */
  readonly notifyEmails: readonly string[];
  /**
   * Amazon Managed Service for Prometheus workspace (in the stack's account and region) that
   * receives the rules, and whose Alertmanager the stack configures to publish the alerts to the
   * alarm router's topic. @default none
   */
  readonly prometheusWorkspaceId?: string;
  /**
   * A self-managed Alertmanager sends the alerts: the stack creates the Prometheus alert topic the
   * router subscribes to and the managed policy `<prefix>-prometheus-alertmanager-publish` for the
   * Alertmanager's role (README "Prometheus alerts"). The topic comes with `prometheusWorkspaceId`
   * too. @default false
   */
  readonly selfManagedAlertmanager: boolean;
  /** @default { shards: 0 } (every node in the shared stack, at most 16) */
  readonly fleet: FleetConfig;
  /** @default [] (synth still succeeds and warns) */
  readonly nodes: readonly NodeConfig[];
}

export const DEFAULT_CONFIG: StemeDbConfig = {
  prefix: DEFAULT_PREFIX,
  dataMount: '/data',
  walDir: '/data/wal',
  dbDir: '/data/db',
  backupDir: '/backups',
  configFile: '/etc/stemedb/config.toml',
  fstabFile: '/etc/fstab',
  serviceName: 'stemedb-api',
  healthUrl: 'http://localhost:18180/v1/health',
  thresholds: RUNBOOK_THRESHOLDS,
  expansion: DEFAULT_EXPANSION,
  wal: { retentionDays: 7, archiveAfterDays: 30, maxSegments: 100, segmentSizeMb: 64 },
  snapshots: { retainCount: 7, timeUtc: '03:00' },
  archive: { transitionAfterDays: 30, noncurrentExpireDays: 90, objectLockDays: 0 },
  remediation: {
    warning: 'ArchiveWal',
    critical: 'ExpandVolume',
    emergencySpace: 'EmergencyCleanup',
    inodes: 'InodeCleanup',
    fillsSoon: 'ArchiveWal',
    recheckMinutes: 15,
    migrateWhenRefused: false,
    maxConcurrent: 10,
    mode: 'act',
  },
  prevention: {
    journald: { systemMaxUse: '500M', maxRetentionSec: '7day', associate: false },
    storage: {
      compactionEnabled: true,
      compactionIntervalHours: 24,
      compactionThresholdMb: 1000,
      backupRetentionDays: 7,
      backupCompressionEnabled: true,
      associate: false,
    },
    scheduleDays: 1,
  },
  notifyEmails: [],
  selfManagedAlertmanager: false,
  fleet: { shards: 0, sharedStackNodes: MAX_NODES_IN_SHARED_STACK },
  nodes: [],
};

/**
/**
 * CloudFormation's resource limit per stack, and what each stack spends of it, counted in
 * synthesized templates (test/stack.test.ts and test/fleet.test.ts check
 * {@link stackResourceCount} and {@link nodeStackResourceCount} against them).
 * The shared stack `<prefix>-Disk`: the shared side (the operator managed policy among them;
 * stack outputs and exports are not resources); the fleet overview dashboard once there are node
 * stacks (`fleet.shards` > 0); the CloudWatch agent's install associations (one per 50 nodes of
 * the whole fleet); 12 per node of shard 0 (volume and attachment or the adopted volume's tagging
 * resource and its policy, six alarms, the node policy, the registry entry, the agent
 * configuration parameter and its association: each node publishes to a metrics namespace of its
 * own); the AwsCustomResource provider (Lambda, role, log group) once a node of shard 0 adopts a
 * volume or an AMP workspace is configured; one subscription per email; with an AMP workspace,
 * the rule groups namespace and the alert manager definition (a custom resource and its policy);
 * with a workspace or a self-managed Alertmanager, the Prometheus alert topic, its policy, the
 * router's subscription and invoke permission; with a self-managed Alertmanager, its publisher
 * policy; once there is a node, one State Manager association per 50 nodes of the whole fleet for
 * each prevention document the configuration opts in to.
 * A node stack `<prefix>-Disk-Nodes-<n>`: its shard dashboard, 12 per node, and the provider's
 * three once one of its nodes adopts a volume. lib/fleet-shards.ts caps the nodes per stack below
 * both this limit and the template size limit.
 */
export const STACK_RESOURCE_LIMIT = 500;
export const STACK_RESOURCES = {
  shared: 66,
  fleetDashboard: 1,
  agentInstallAssociationPer50Nodes: 1,
  perNode: 12,
  customResourceProvider: 3,
  perEmail: 1,
  prometheusWorkspace: 3,
  prometheusAlertTopic: 4,
  selfManagedAlertmanager: 1,
  preventionAssociationPer50Nodes: 1,
  nodeStackDashboard: 1,
} as const;

type ResourceInputs = Pick<
  StemeDbConfig,
  'nodes' | 'notifyEmails' | 'prometheusWorkspaceId' | 'selfManagedAlertmanager'
> & {
  readonly prevention?: PreventionConfig;
  readonly fleet?: FleetConfig;
};

/** The prevention associations the configuration opts in to (each targets every node). */
function preventionAssociations(c: ResourceInputs): number {
  const p = c.prevention;
  if (!isObject(p) || c.nodes.length === 0) return 0;
  const documents = [p.journald, p.storage].filter((x) => isObject(x) && x.associate === true).length;
  return documents * Math.ceil(c.nodes.length / 50) * STACK_RESOURCES.preventionAssociationPer50Nodes;
}

const adopts = (nodes: readonly NodeConfig[]) =>
  nodes.some((n) => isObject(n) && n.existingVolumeId !== undefined);

/** `fleet.shards` when it is valid, else 0 (for counting only: validation reports it). */
function shardCount(c: ResourceInputs): number {
  const shards = c.fleet?.shards ?? 0;
  return isInt(shards, 0, MAX_NODE_STACKS) ? shards : 0;
}

/** The nodes of shard 0 (the shared stack), for resource counts. */
function sharedStackNodes(c: ResourceInputs): readonly NodeConfig[] {
  const named = c.nodes.filter((n) => isObject(n) && typeof n.name === 'string');
  return nodesByShard(named, shardCount(c)).get(SHARED_STACK_SHARD) ?? [];
}

/** Resources the shared stack holds apart from the 12 per node of its own, for this configuration. */
function fixedStackResources(c: ResourceInputs): number {
  const r = STACK_RESOURCES;
  const workspace = c.prometheusWorkspaceId !== undefined;
  const selfManaged = c.selfManagedAlertmanager === true;
  return (
    r.shared +
    (shardCount(c) > 0 ? r.fleetDashboard : 0) +
    Math.ceil(c.nodes.length / 50) * r.agentInstallAssociationPer50Nodes +
    (adopts(sharedStackNodes(c)) || workspace ? r.customResourceProvider : 0) +
    c.notifyEmails.length * r.perEmail +
    (workspace ? r.prometheusWorkspace : 0) +
    (workspace || selfManaged ? r.prometheusAlertTopic : 0) +
    (selfManaged ? r.selfManagedAlertmanager : 0) +
    preventionAssociations(c)
  );
}

/** How many resources the synthesized shared stack holds for this configuration. */
export function stackResourceCount(c: ResourceInputs): number {
  return fixedStackResources(c) + sharedStackNodes(c).length * STACK_RESOURCES.perNode;
}

/** How many resources a node stack holding `nodes` has. */
export function nodeStackResourceCount(nodes: readonly NodeConfig[]): number {
  const r = STACK_RESOURCES;
  return r.nodeStackDashboard + nodes.length * r.perNode + (adopts(nodes) ? r.customResourceProvider : 0);
}

/** Thrown when configuration is invalid; the message lists every problem found. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid StemeDB configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const PATTERNS = {
  name: NODE_NAME_PATTERN,
  instanceId: INSTANCE_ID_PATTERN,
  volumeId: VOLUME_ID_PATTERN,
  availabilityZone: AVAILABILITY_ZONE_PATTERN,
  deviceName: /^\/dev\/(?:sd[f-p]|xvd[f-p])$/,
  prefix: PREFIX_PATTERN,
  /** SSM reserves document names starting with these, in any case (CreateDocument Name). */
  reservedPrefix: /^(?:aws|amazon|amzn)/i,
  path: /^\/[A-Za-z0-9._/-]*$/,
  /**
   * A normalised path as every Command and Automation document's pattern accepts it (the
   * strictest is EmergencyCleanup's): segments that do not start with ".", at most 16 of 128.
   */
  normalPath: /^(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}){1,16}$/,
  serviceName: /^[A-Za-z0-9][A-Za-z0-9@._-]{0,99}$/,
  healthUrl: /^http:\/\/(?:localhost|127\.0\.0\.1)(?::\d{1,5})?\/[A-Za-z0-9._/-]*$/,
  email: /^[^@\s]+@[^@\s]+\.[^@\s]+$/,
  workspaceId: /^ws-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  timeUtc: /^(?:[01]\d|2[0-3]):[0-5]\d$/,
};

const TOP_KEYS = new Set<string>([...Object.keys(DEFAULT_CONFIG), 'prometheusWorkspaceId']);
const NESTED_KEYS = [
  'thresholds',
  'expansion',
  'wal',
  'snapshots',
  'archive',
  'remediation',
  'prevention',
  'fleet',
] as const;
/** The blocks one level further down that merge key by key too. */
const PREVENTION_BLOCKS = ['journald', 'storage'] as const;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merges `over` onto `base`: top-level keys replace, the nested sections merge key by key. */
export function mergeRawConfig(base: Json, over: Json): Json {
  const out: Json = { ...base, ...over };
  for (const key of NESTED_KEYS) {
    if (isObject(base[key]) && isObject(over[key])) out[key] = { ...base[key], ...over[key] };
  }
  const [bp, op] = [base.prevention, over.prevention];
  if (isObject(bp) && isObject(op)) {
    const merged: Json = { ...bp, ...op };
    for (const block of PREVENTION_BLOCKS) {
      if (isObject(bp[block]) && isObject(op[block])) merged[block] = { ...bp[block], ...op[block] };
    }
    out.prevention = merged;
  }
  return out;
}

/** Reads the raw configuration from CDK context values (as `node.tryGetContext` returns them). */
export function readRawConfig(contextValue: unknown, configFilePath: unknown): Json {
  let raw: Json = {};
  if (contextValue !== undefined) {
    const parsed =
      typeof contextValue === 'string' ? parseJson(contextValue, 'context key "stemedb"') : contextValue;
    if (!isObject(parsed)) {
      throw new ConfigError([`context key "stemedb" must be a JSON object, got ${JSON.stringify(parsed)}`]);
    }
    raw = parsed;
  }
  if (configFilePath !== undefined) {
    if (typeof configFilePath !== 'string' || configFilePath.length === 0) {
      throw new ConfigError([
        `context key "stemedbConfig" must be a file path, got ${JSON.stringify(configFilePath)}`,
      ]);
    }
    let text: string;
    try {
      text = readFileSync(resolve(configFilePath), 'utf8');
    } catch (err) {
      throw new ConfigError([
        `stemedbConfig file ${configFilePath} cannot be read: ${(err as Error).message}`,
      ]);
    }
    const parsed = parseJson(text, `stemedbConfig file ${configFilePath}`);
    if (!isObject(parsed)) {
      throw new ConfigError([`stemedbConfig file ${configFilePath} must hold a JSON object`]);
    }
    raw = mergeRawConfig(raw, parsed);
  }
  return raw;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`${what} is not valid JSON: ${(err as Error).message}`]);
  }
}

/** The path keys; each is normalised once, here, and every later use sees the normal form. */
const PATH_KEYS = ['dataMount', 'walDir', 'dbDir', 'backupDir', 'configFile', 'fstabFile'] as const;

/**
 * A path's normal form: "//" collapsed, "." segments and a trailing "/" dropped ("/data/./wal/"
 * is "/data/wal"). ".." is kept (and then refused): resolving it would need the host's filesystem.
 */
export function normalisePath(path: string): string {
  return `/${path
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/')}`;
}

/** Applies defaults to a raw configuration and validates every value. Throws {@link ConfigError}. */
export function resolveConfig(raw: Json): StemeDbConfig {
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (!TOP_KEYS.has(key))
      problems.push(`${key} is not a configuration key; accepted keys: ${[...TOP_KEYS].join(', ')}`);
  }
  for (const key of NESTED_KEYS) {
    if (raw[key] !== undefined && !isObject(raw[key])) {
      problems.push(`${key} must be an object, got ${JSON.stringify(raw[key])}`);
    } else if (isObject(raw[key])) {
      const known = Object.keys(DEFAULT_CONFIG[key]);
      for (const sub of Object.keys(raw[key])) {
        if (!known.includes(sub))
          problems.push(`${key}.${sub} is not a configuration key; accepted: ${known.join(', ')}`);
      }
    }
  }
  problems.push(...unknownPreventionKeys(raw.prevention));
  if (problems.length > 0) throw new ConfigError(problems);

  const merged = mergeRawConfig(DEFAULT_CONFIG as unknown as Json, raw) as unknown as StemeDbConfig;
  const paths: Partial<Record<(typeof PATH_KEYS)[number], string>> = {};
  for (const key of PATH_KEYS) {
    if (isSafePath(merged[key])) paths[key] = normalisePath(merged[key]);
  }
  const config: StemeDbConfig = {
    ...merged,
    ...paths,
    nodes: Array.isArray(merged.nodes) ? merged.nodes.map(withVolumeDefaults) : merged.nodes,
  };
  problems.push(...configProblems(config));
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Unknown keys, and blocks that are not objects, inside `prevention.journald` and `prevention.storage`. */
function unknownPreventionKeys(raw: unknown): string[] {
  if (!isObject(raw)) return [];
  const p: string[] = [];
  for (const block of PREVENTION_BLOCKS) {
    const value = raw[block];
    if (value === undefined) continue;
    if (!isObject(value)) {
      p.push(`prevention.${block} must be an object, got ${JSON.stringify(value)}`);
      continue;
    }
    const known = Object.keys(DEFAULT_CONFIG.prevention[block]);
    for (const sub of Object.keys(value)) {
      if (!known.includes(sub))
        p.push(`prevention.${block}.${sub} is not a configuration key; accepted: ${known.join(', ')}`);
    }
  }
  return p;
}

/** journald sizes (powers of 1024) and time spans (systemd's month and year), as the document takes them. */
const JOURNALD_SIZE = /^([1-9]\d{0,5})([KMGT])$/;
const JOURNALD_SPAN = /^([1-9]\d{0,4})(s|min|h|day|week|month|year)$/;
const SIZE_POWER: Readonly<Record<string, number>> = { K: 1, M: 2, G: 3, T: 4 };
const SPAN_SECONDS: Readonly<Record<string, number>> = {
  s: 1,
  min: 60,
  h: 3600,
  day: 86_400,
  week: 604_800,
  month: 2_629_800,
  year: 31_557_600,
};

function journaldSizeOk(v: unknown): boolean {
  const m = typeof v === 'string' ? JOURNALD_SIZE.exec(v) : null;
  if (m === null) return false;
  const bytes = Number(m[1]) * 1024 ** (SIZE_POWER[m[2] as string] ?? 0);
  return bytes >= 16 * 1024 ** 2 && bytes <= 16 * 1024 ** 4;
}

function journaldSpanOk(v: unknown): boolean {
  const m = typeof v === 'string' ? JOURNALD_SPAN.exec(v) : null;
  if (m === null) return false;
  const seconds = Number(m[1]) * (SPAN_SECONDS[m[2] as string] ?? 0);
  return seconds >= 3600 && seconds <= 10 * 31_557_600;
}

const BOOLEAN = { test: (v: unknown) => typeof v === 'boolean', accepted: 'true or false' } as const;

/** The rules of a `prevention` block (keys under `prevention.`). */
const PREVENTION_RULES: readonly Rule<PreventionConfig>[] = [
  {
    path: 'journald.systemMaxUse',
    test: journaldSizeOk,
    accepted:
      'journald\'s SystemMaxUse: digits and K, M, G or T (powers of 1024) from 16M to 16T, such as "500M"',
  },
  {
    path: 'journald.maxRetentionSec',
    test: journaldSpanOk,
    accepted:
      'journald\'s MaxRetentionSec: digits and s, min, h, day, week, month or year, from 1 hour to 10 years, such as "7day"',
  },
  { path: 'journald.associate', ...BOOLEAN },
  { path: 'storage.compactionEnabled', ...BOOLEAN },
  {
    path: 'storage.compactionIntervalHours',
    test: wholeNumber(1, 8760),
    accepted: 'a whole number of hours from 1 to 8760',
  },
  {
    path: 'storage.compactionThresholdMb',
    test: wholeNumber(1, 1_000_000),
    accepted: 'a whole number of MB from 1 to 1000000',
  },
  {
    path: 'storage.backupRetentionDays',
    test: wholeNumber(1, 3650),
    accepted: 'a whole number of days from 1 to 3650',
  },
  { path: 'storage.backupCompressionEnabled', ...BOOLEAN },
  { path: 'storage.associate', ...BOOLEAN },
  { path: 'scheduleDays', test: wholeNumber(1, 30), accepted: 'a whole number of days from 1 to 30' },
];

/** Every problem of a `prevention` block (also used by lib/prevention-documents.ts), each naming its key. */
export function preventionProblems(prevention: PreventionConfig): string[] {
  if (!isObject(prevention)) return [`prevention must be an object, got ${JSON.stringify(prevention)}`];
  return applyRules(PREVENTION_RULES, prevention, 'prevention');
}

function withVolumeDefaults(node: NodeConfig): NodeConfig {
  if (!isObject(node) || !isObject(node.dataVolume)) return node;
  const defaults: Partial<NewDataVolumeConfig> = { type: 'gp3', deviceName: '/dev/sdf' };
  return { ...node, dataVolume: { ...defaults, ...node.dataVolume } };
}

function isInt(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** A {@link ValueRule} test: a whole number from `min` to `max`. */
function wholeNumber(min: number, max: number): (v: unknown) => boolean {
  return (v) => isInt(v, min, max);
}

function matches(re: RegExp, v: unknown): boolean {
  return typeof v === 'string' && re.test(v);
}

function isSafePath(v: unknown): boolean {
  return matches(PATTERNS.path, v) && !(v as string).split('/').includes('..') && (v as string).length <= 200;
}

function hasValidPort(url: string): boolean {
  const port = /^http:\/\/[^/:]+:(\d+)\//.exec(url)?.[1];
  return port === undefined || (Number(port) >= 1 && Number(port) <= 65_535);
}

// ---------------------------------------------------------------------------------------------
// Validation rules: each list is applied in order, in one loop ({@link applyRules})

/**
 * A rule on one value: `path` names the value under what the list checks (`expansion.growPercent`;
 * '' for the whole), and a value that fails `test` is reported as
 * `<where><path> is <value as JSON>; expected <accepted>`.
 */
interface ValueRule<T> {
  readonly path: string;
  readonly test: (value: unknown, whole: T) => boolean;
  /** What is accepted, for the message. */
  readonly accepted: string | ((whole: T) => string);
  /** Apply the rule only when this holds (an optional key that is set, a branch). @default always */
  readonly when?: (whole: T) => boolean;
  /** When the rule fails, the rest of the list is not applied (it would only repeat the problem). @default false */
  readonly final?: boolean;
}

/** A rule across values (duplicates, one inside another, limits that depend on other keys): its own messages. */
interface ProblemsRule<T> {
  readonly path: string;
  /** The problems found, each naming its key; `where` is the prefix of the keys (`nodes[0]`, or ''). */
  readonly problems: (whole: T, where: string) => readonly string[];
  /** @default always */
  readonly when?: (whole: T) => boolean;
  /** When the rule reports a problem, the rest of the list is not applied. @default false */
  readonly final?: boolean;
}

type Rule<T> = ValueRule<T> | ProblemsRule<T>;

/** `a.b` of `where` (`nodes[0]` + `name` → `nodes[0].name`). */
function keyAt(where: string, path: string): string {
  return where === '' ? path : path === '' ? where : `${where}.${path}`;
}

function valueAt(whole: unknown, path: string): unknown {
  if (path === '') return whole;
  return path.split('.').reduce<unknown>((v, key) => (isObject(v) ? v[key] : undefined), whole);
}

/** The problems `rules` find in `whole`, in the order of the list. */
function applyRules<T>(rules: readonly Rule<T>[], whole: T, where = ''): string[] {
  const problems: string[] = [];
  for (const rule of rules) {
    if (rule.when !== undefined && !rule.when(whole)) continue;
    let found: readonly string[];
    if ('problems' in rule) {
      found = rule.problems(whole, where);
    } else {
      const value = valueAt(whole, rule.path);
      const accepted = typeof rule.accepted === 'string' ? rule.accepted : rule.accepted(whole);
      found = rule.test(value, whole)
        ? []
        : [`${keyAt(where, rule.path)} is ${JSON.stringify(value)}; expected ${accepted}`];
    }
    problems.push(...found);
    if (rule.final === true && found.length > 0) break;
  }
  return problems;
}

/** The sections the routed alarm kinds start (`remediation.<key>`). */
const ROUTED_SECTION_KEYS = ['warning', 'critical', 'emergencySpace', 'inodes', 'fillsSoon'] as const;

/** Every rule of the configuration, in the order its problems are reported. */
const CONFIG_RULES: readonly Rule<StemeDbConfig>[] = [
  {
    path: 'prefix',
    test: (v) => matches(PATTERNS.prefix, v) && !PATTERNS.reservedPrefix.test(v as string),
    accepted:
      'a letter then up to 19 letters or digits, not starting with "AWS", "Amazon" or "amzn" in any case (SSM reserves those document name prefixes)',
  },
  { path: 'dataMount, walDir, dbDir, backupDir, configFile', problems: pathProblems },
  {
    path: 'serviceName',
    test: (v) => matches(PATTERNS.serviceName, v),
    accepted: 'a systemd unit name (letters, digits, "@", ".", "_", "-")',
  },
  {
    path: 'healthUrl',
    test: (v) => matches(PATTERNS.healthUrl, v) && hasValidPort(v as string),
    accepted:
      'an http URL on localhost or 127.0.0.1 with a port from 1 to 65535 if any, such as http://localhost:18180/v1/health',
  },
  {
    path: 'thresholds',
    problems: (c) =>
      isObject(c.thresholds) ? thresholdProblems(c.thresholds) : ['thresholds must be an object'],
  },
  { path: 'expansion.growPercent', test: wholeNumber(1, 1000), accepted: 'a whole number from 1 to 1000' },
  {
    path: 'expansion.minGrowGiB',
    test: wholeNumber(1, 65_536),
    accepted: 'a whole number of GiB from 1 to 65536',
  },
  {
    path: 'expansion.maxSizeGiB',
    test: wholeNumber(1, 65_536),
    accepted: 'a whole number of GiB from 1 to 65536',
  },
  {
    path: 'expansion.minGrowGiB',
    when: ({ expansion: e }) =>
      isInt(e.minGrowGiB, 1, 65_536) && isInt(e.maxSizeGiB, 1, 65_536) && e.minGrowGiB > e.maxSizeGiB,
    problems: ({ expansion: e }) => [
      `expansion.minGrowGiB (${e.minGrowGiB}) is above expansion.maxSizeGiB (${e.maxSizeGiB}); no expansion could grow by the minimum: lower minGrowGiB or raise maxSizeGiB`,
    ],
  },
  { path: 'expansion.snapshotBeforeExpand', test: (v) => typeof v === 'boolean', accepted: 'true or false' },
  {
    path: 'expansion.snapshotsKept',
    test: wholeNumber(1, 1000),
    accepted: 'a whole number of snapshots from 1 to 1000 (kept per volume besides the one just taken)',
  },
  {
    path: 'expansion.snapshotsDeleteAfterDays',
    test: wholeNumber(0, 3650),
    accepted: 'a whole number of days from 0 (no wait) to 3650',
  },
  {
    path: 'expansion.warnWithinPercent',
    test: wholeNumber(0, 100),
    accepted: 'a whole number from 0 (warn only at the cap) to 100',
  },
  {
    path: 'wal.retentionDays',
    test: wholeNumber(1, 3650),
    accepted: 'a whole number of days from 1 to 3650',
  },
  {
    path: 'wal.archiveAfterDays',
    test: wholeNumber(0, 3650),
    accepted: 'a whole number of days from 0 to 3650',
  },
  { path: 'wal.maxSegments', test: wholeNumber(1, 1_000_000), accepted: 'a whole number from 1 to 1000000' },
  { path: 'wal.segmentSizeMb', test: wholeNumber(1, 4096), accepted: 'a whole number of MB from 1 to 4096' },
  { path: 'snapshots.retainCount', test: wholeNumber(1, 1000), accepted: 'a whole number from 1 to 1000' },
  {
    path: 'snapshots.timeUtc',
    test: (v) => matches(PATTERNS.timeUtc, v),
    accepted: 'a time of day as HH:MM in UTC, such as "03:00"',
  },
  {
    path: 'archive.transitionAfterDays',
    test: wholeNumber(30, 3650),
    accepted: 'a whole number of days from 30 to 3650 (S3 needs 30 before a colder class)',
  },
  {
    path: 'archive.noncurrentExpireDays',
    test: wholeNumber(1, 3650),
    accepted: 'a whole number of days from 1 to 3650',
  },
  {
    path: 'archive.objectLockDays',
    test: wholeNumber(0, 3650),
    accepted: 'a whole number of days from 0 (off) to 3650',
  },
  ...ROUTED_SECTION_KEYS.map(
    (key): Rule<StemeDbConfig> => ({
      path: `remediation.${key}`,
      test: (v) => v === '' || (REMEDIATION_SECTIONS as readonly unknown[]).includes(v),
      accepted: `"" (none) or one of ${REMEDIATION_SECTIONS.join(', ')}`,
    }),
  ),
  {
    path: 'remediation.recheckMinutes',
    test: wholeNumber(5, 1440),
    accepted: 'a whole number of minutes from 5 to 1440',
  },
  {
    path: 'remediation.migrateWhenRefused',
    test: (v) => typeof v === 'boolean',
    accepted: 'true or false',
  },
  {
    path: 'remediation.maxConcurrent',
    test: wholeNumber(1, 100),
    accepted:
      'a whole number of remediations from 1 to 100 (the router reads every slot in one BatchGetItem)',
  },
  {
    path: 'remediation.mode',
    test: (v) => (AUTOMATION_MODES as readonly unknown[]).includes(v),
    accepted: AUTOMATION_MODES.join(', '),
  },
  { path: 'prevention', problems: (c) => preventionProblems(c.prevention) },
  { path: 'notifyEmails', problems: emailProblems },
  { path: 'selfManagedAlertmanager', test: (v) => typeof v === 'boolean', accepted: 'true or false' },
  {
    path: 'prometheusWorkspaceId',
    when: (c) => c.prometheusWorkspaceId !== undefined,
    test: (v) => matches(PATTERNS.workspaceId, v),
    accepted:
      'an Amazon Managed Service for Prometheus workspace ID such as ws-12345678-abcd-ef01-2345-6789abcdef01',
  },
  {
    path: 'nodes',
    test: (v) => Array.isArray(v),
    accepted: 'a list of nodes',
    final: true,
  },
  {
    path: 'fleet.shards',
    test: wholeNumber(0, MAX_NODE_STACKS),
    accepted: `a whole number of node stacks from 0 (every node in the shared stack) to ${MAX_NODE_STACKS}`,
    final: true,
  },
  {
    path: 'fleet.sharedStackNodes',
    test: wholeNumber(1, MAX_NODES_IN_SHARED_STACK_ALLOWED),
    accepted: `a whole number of nodes from 1 to ${MAX_NODES_IN_SHARED_STACK_ALLOWED} (default ${MAX_NODES_IN_SHARED_STACK}; more than ${MAX_NODES_IN_SHARED_STACK} only to keep a deployment's nodes where they are)`,
    final: true,
  },
  { path: 'nodes', problems: nodeListProblems },
  { path: 'nodes', when: (c) => Array.isArray(c.notifyEmails), problems: stackSizeProblems },
];

/** Every problem in a resolved configuration; empty when valid. Exported for tests. */
export function configProblems(c: StemeDbConfig): string[] {
  return applyRules(CONFIG_RULES, c);
}

const EMAIL_RULES: readonly Rule<unknown>[] = [
  { path: '', test: (v) => matches(PATTERNS.email, v), accepted: 'an email address such as ops@example.com' },
];

/** `notifyEmails`: a list of addresses, each listed once (in any case). */
function emailProblems(c: StemeDbConfig): string[] {
  if (!Array.isArray(c.notifyEmails)) {
    return [`notifyEmails is ${JSON.stringify(c.notifyEmails)}; expected a list of email addresses`];
  }
  const p: string[] = [];
  const seenEmails = new Map<string, number>();
  c.notifyEmails.forEach((m, i) => {
    p.push(...applyRules(EMAIL_RULES, m, `notifyEmails[${i}]`));
    if (typeof m !== 'string') return;
    const first = seenEmails.get(m.toLowerCase());
    if (first !== undefined) {
      p.push(
        `notifyEmails[${i}] ${JSON.stringify(m)} is listed twice (also notifyEmails[${first}]); list each address once`,
      );
    } else {
      seenEmails.set(m.toLowerCase(), i);
    }
  });
  return p;
}

/** Every node by {@link NODE_RULES}, then across nodes: names, instances and adopted volumes once, the cap above every size. */
function nodeListProblems(c: StemeDbConfig): string[] {
  const p: string[] = [];
  const e = c.expansion;
  const seenNames = new Set<string>();
  const seenInstances = new Set<string>();
  const seenVolumes = new Map<string, number>();
  c.nodes.forEach((n, i) => {
    p.push(...applyRules(NODE_RULES, n, `nodes[${i}]`));
    if (isObject(n) && n.shard !== undefined && !isInt(n.shard, 0, c.fleet.shards)) {
      p.push(
        `nodes[${i}].shard is ${JSON.stringify(n.shard)}; expected a whole number from 0 (the shared stack) to fleet.shards (${c.fleet.shards})`,
      );
    }
    if (isObject(n) && typeof n.name === 'string' && typeof n.instanceId === 'string') {
      if (seenNames.has(n.name))
        p.push(`nodes[${i}].name ${JSON.stringify(n.name)} is used twice; node names must be unique`);
      if (seenInstances.has(n.instanceId))
        p.push(`nodes[${i}].instanceId ${JSON.stringify(n.instanceId)} is used twice; one node per instance`);
      seenNames.add(n.name);
      seenInstances.add(n.instanceId);
    }
    if (isObject(n) && typeof n.existingVolumeId === 'string') {
      const first = seenVolumes.get(n.existingVolumeId);
      if (first !== undefined) {
        p.push(
          `nodes[${i}].existingVolumeId ${JSON.stringify(n.existingVolumeId)} is used twice (also nodes[${first}]); a volume belongs to one node`,
        );
      } else {
        seenVolumes.set(n.existingVolumeId, i);
      }
    }
    const size = isObject(n) && isObject(n.dataVolume) ? n.dataVolume.sizeGiB : undefined;
    if (isInt(size, 1, 65_536) && isInt(e.maxSizeGiB, 1, 65_536) && e.maxSizeGiB < (size as number)) {
      p.push(
        `expansion.maxSizeGiB (${e.maxSizeGiB}) is below nodes[${i}].dataVolume.sizeGiB (${size}); the cap must be at least the size of every volume`,
      );
    }
  });
  return p;
}

/**
 * The nodes each stack holds: every shard within its capacity (lib/fleet-shards.ts), and the
 * shared stack (shard 0) also within CloudFormation's resource limit with its shared resources.
 */
function stackSizeProblems(c: StemeDbConfig): string[] {
  const named = c.nodes.filter((n): n is NodeConfig => isObject(n) && typeof n.name === 'string');
  if (named.some((n) => n.shard !== undefined && !isInt(n.shard, 0, c.fleet.shards))) return [];
  const capacity = shardCapacityProblems(named, c.fleet.shards, c.prefix, c.fleet.sharedStackNodes);
  if (capacity.length > 0) return capacity;
  const inShared = sharedStackNodes(c);
  const fixed = fixedStackResources(c);
  // The shard capacity (fleet.sharedStackNodes) held above; here only the resource limit can bind.
  const most = Math.floor((STACK_RESOURCE_LIMIT - fixed) / STACK_RESOURCES.perNode);
  if (inShared.length <= most) return [];
  return [
    `shard 0 (the shared stack ${c.prefix}-Disk) has ${inShared.length} nodes; it holds at most ${most} with this configuration (CloudFormation's ${STACK_RESOURCE_LIMIT} resources per stack: ${fixed} shared, ${STACK_RESOURCES.perNode} per node): give nodes an explicit "shard" in a node stack (fleet.shards)`,
  ];
}

type PathKey = (typeof PATH_KEYS)[number];

/** One path key's rules; the first that fails is its only problem. */
function pathRules(key: PathKey): readonly Rule<StemeDbConfig>[] {
  return [
    {
      path: key,
      test: isSafePath,
      accepted: 'an absolute path of letters, digits, ".", "_", "-" and "/" with no ".." segment',
      final: true,
    },
    {
      path: key,
      when: (c) => key === 'dataMount' && normalisePath(c[key]) === '/',
      problems: () => [
        `dataMount is "/"; expected the data volume's mount point, not / (the root filesystem), such as /data`,
      ],
      final: true,
    },
    {
      path: key,
      test: (v) => normalisePath(v as string) === v,
      accepted: (c) => `its normal form ${JSON.stringify(normalisePath(c[key]))}`,
      final: true,
    },
    {
      path: key,
      test: (v) => PATTERNS.normalPath.test(v as string),
      accepted:
        'path segments that start with a letter, digit, "_" or "-" (the SSM documents refuse hidden names), at most 16 segments of up to 128 characters',
    },
  ];
}

/** The path keys that passed their own rules, for the rules between them. */
type ValidPaths = Partial<Record<PathKey, string>>;

const inside = (dir: string, parent: string) => dir.startsWith(`${parent}/`);

/** How the path keys must relate: WAL and database inside the mount, no two directories the same, no config file in them. */
const PATH_RELATION_RULES: readonly Rule<ValidPaths>[] = [
  {
    path: 'walDir',
    when: ({ dataMount, walDir }) => dataMount !== undefined && walDir === dataMount,
    problems: ({ walDir }) => [
      `walDir is ${JSON.stringify(walDir)}, the data mount itself (dataMount); expected a directory inside it (ArchiveWal would archive and delete the files at the mount's root)`,
    ],
  },
  ...(['walDir', 'dbDir'] as const).map(
    (key): Rule<ValidPaths> => ({
      path: key,
      when: (paths) => {
        const { dataMount } = paths;
        const dir = paths[key];
        return dataMount !== undefined && dir !== undefined && dir !== dataMount && !inside(dir, dataMount);
      },
      problems: (paths) => [
        `${key} is ${JSON.stringify(paths[key])}; expected a directory inside dataMount (${paths.dataMount})`,
      ],
    }),
  ),
  {
    path: 'dbDir',
    when: ({ dataMount, dbDir }) => dataMount !== undefined && dbDir === dataMount,
    problems: ({ dataMount, dbDir }) => [
      `dbDir is ${JSON.stringify(dbDir)}; expected a directory inside dataMount (${dataMount})`,
    ],
  },
  {
    path: 'walDir',
    when: ({ walDir, dbDir }) => walDir !== undefined && walDir === dbDir,
    problems: ({ walDir }) => [
      `walDir and dbDir are both ${JSON.stringify(walDir)}; give the WAL its own directory (ArchiveWal would archive and delete database files)`,
    ],
  },
  {
    path: 'dbDir',
    when: ({ walDir, dbDir }) =>
      walDir !== undefined && dbDir !== undefined && walDir !== dbDir && inside(dbDir, walDir),
    problems: ({ walDir, dbDir }) => [
      `dbDir ${JSON.stringify(dbDir)} is inside walDir ${JSON.stringify(walDir)}; expected separate directories (the WAL automations would treat the database as WAL)`,
    ],
  },
  ...(['walDir', 'dbDir'] as const).map(
    (key): Rule<ValidPaths> => ({
      path: 'configFile',
      when: (paths) => {
        const { configFile } = paths;
        const dir = paths[key];
        return (
          configFile !== undefined && dir !== undefined && (configFile === dir || inside(configFile, dir))
        );
      },
      problems: (paths) => {
        const configFile = paths.configFile as string;
        const dir = paths[key] as string;
        return [
          `configFile ${JSON.stringify(configFile)} is ${configFile === dir ? '' : 'inside '}${key} ${JSON.stringify(dir)}; expected a file outside the WAL and database directories (ArchiveWal archives and deletes every file in walDir, InodeCleanup deletes empty files in dbDir)`,
        ];
      },
    }),
  ),
  {
    path: 'fstabFile',
    when: ({ fstabFile, dataMount }) =>
      fstabFile !== undefined &&
      dataMount !== undefined &&
      (fstabFile === dataMount || inside(fstabFile, dataMount)),
    problems: ({ fstabFile, dataMount }) => [
      `fstabFile ${JSON.stringify(fstabFile)} is ${fstabFile === dataMount ? '' : 'inside '}dataMount ${JSON.stringify(dataMount)}; expected a file outside the data mount (MigrateDataVolume unmounts it and mounts the new volume there from this fstab)`,
    ],
  },
  {
    path: 'fstabFile',
    when: ({ fstabFile, configFile }) => fstabFile !== undefined && fstabFile === configFile,
    problems: ({ fstabFile }) => [
      `fstabFile and configFile are both ${JSON.stringify(fstabFile)}; expected two files (MigrateDataVolume edits the fstab, WalCleanup the StemeDB config)`,
    ],
  },
  {
    path: 'backupDir',
    when: ({ backupDir, walDir }) => backupDir !== undefined && backupDir === walDir,
    problems: ({ backupDir }) => [
      `backupDir and walDir are both ${JSON.stringify(backupDir)}; expected separate directories (backups would be archived and deleted as WAL, and a fresh backup would hide the newest segment)`,
    ],
  },
  {
    path: 'backupDir',
    when: ({ backupDir, dbDir }) => backupDir !== undefined && backupDir === dbDir,
    problems: ({ backupDir }) => [
      `backupDir and dbDir are both ${JSON.stringify(backupDir)}; expected separate directories (EmergencyCleanup deletes old backups there)`,
    ],
  },
];

/** The path keys: each a safe, normalised path the documents accept ({@link pathRules}), and no two in conflict. */
function pathProblems(c: StemeDbConfig): string[] {
  const p: string[] = [];
  const valid: ValidPaths = {};
  for (const key of PATH_KEYS) {
    const found = applyRules(pathRules(key), c);
    if (found.length === 0) valid[key] = c[key];
    p.push(...found);
  }
  return [...p, ...applyRules(PATH_RELATION_RULES, valid)];
}

const NODE_KEYS = ['name', 'instanceId', 'availabilityZone', 'dataVolume', 'existingVolumeId', 'shard'];
const DATA_VOLUME_KEYS = ['sizeGiB', 'type', 'iops', 'throughput', 'deviceName'];

/** The node's new data volume (only where {@link hasDataVolume} holds). */
const dataVolumeOf = (n: NodeConfig) => n.dataVolume as NewDataVolumeConfig;
const hasDataVolume = (n: NodeConfig) => n.dataVolume !== undefined && n.existingVolumeId === undefined;
/** The limits of the volume's type (only once the type is known). */
const limitsOf = (n: NodeConfig) => VOLUME_LIMITS[dataVolumeOf(n).type];

/** The IOPS a volume of its size and type may have. */
function iopsRange(n: NodeConfig): {
  readonly min: number;
  readonly max: number;
  readonly perGiB: number;
  readonly most: number;
} {
  const v = dataVolumeOf(n);
  const iops = limitsOf(n).iops as { readonly min: number; readonly max: number; readonly perGiB: number };
  const max = Math.min(iops.max, isInt(v.sizeGiB, 1, 65_536) ? v.sizeGiB * iops.perGiB : iops.max);
  return { min: iops.min, max: Math.max(iops.min, max), perGiB: iops.perGiB, most: iops.max };
}

/** The throughput a gp3 volume of its IOPS may have. */
function throughputRange(n: NodeConfig): {
  readonly min: number;
  readonly max: number;
  readonly iops: number;
} {
  const limits = limitsOf(n);
  const throughput = limits.throughput as {
    readonly min: number;
    readonly max: number;
    readonly perIops: number;
  };
  const iops = dataVolumeOf(n).iops ?? limits.iops?.min ?? 3000;
  const max = Math.min(throughput.max, Math.floor(iops * throughput.perIops));
  return { min: throughput.min, max: Math.max(throughput.min, max), iops };
}

/** One node's rules, in the order its problems are reported (`where` is `nodes[<i>]`). */
const NODE_RULES: readonly Rule<NodeConfig>[] = [
  {
    path: '',
    when: (n) => !isObject(n),
    problems: (n, at) => [
      `${at} is ${JSON.stringify(n)}; expected an object with name, instanceId, availabilityZone and dataVolume or existingVolumeId`,
    ],
    final: true,
  },
  {
    path: '',
    problems: (n, at) =>
      Object.keys(n)
        .filter((key) => !NODE_KEYS.includes(key))
        .map((key) => `${at}.${key} is not a node key; accepted: ${NODE_KEYS.join(', ')}`),
  },
  {
    path: 'name',
    test: (v) => matches(PATTERNS.name, v),
    accepted: '2 to 32 lower-case letters, digits and "-", starting with a letter and not ending with "-"',
  },
  {
    path: 'instanceId',
    test: (v) => matches(PATTERNS.instanceId, v),
    accepted: 'an EC2 instance ID such as i-0123456789abcdef0',
  },
  {
    path: 'availabilityZone',
    test: (v) => matches(PATTERNS.availabilityZone, v),
    accepted: 'an Availability Zone name such as eu-west-1a',
  },
  {
    path: '',
    when: (n) => (n.dataVolume !== undefined) === (n.existingVolumeId !== undefined),
    problems: (_n, at) => [
      `${at} must have exactly one of dataVolume (a volume the stack creates) and existingVolumeId (a volume it adopts)`,
    ],
    final: true,
  },
  {
    path: 'existingVolumeId',
    when: (n) => n.existingVolumeId !== undefined,
    test: (v) => matches(PATTERNS.volumeId, v),
    accepted: 'an EBS volume ID such as vol-0123456789abcdef0',
  },
  {
    path: 'dataVolume',
    when: (n) => hasDataVolume(n) && !isObject(n.dataVolume),
    problems: (_n, at) => [`${at}.dataVolume must be an object with sizeGiB`],
    final: true,
  },
  {
    path: 'dataVolume',
    when: hasDataVolume,
    problems: (n, at) =>
      Object.keys(dataVolumeOf(n))
        .filter((key) => !DATA_VOLUME_KEYS.includes(key))
        .map(
          (key) =>
            `${at}.dataVolume.${key} is not a data volume key; accepted: ${DATA_VOLUME_KEYS.join(', ')}`,
        ),
  },
  {
    path: 'dataVolume.type',
    when: (n) => hasDataVolume(n) && limitsOf(n) === undefined,
    problems: (n, at) => [
      `${at}.dataVolume.type is ${JSON.stringify(dataVolumeOf(n).type)}; expected one of ${Object.keys(VOLUME_LIMITS).join(', ')}`,
    ],
    final: true,
  },
  {
    path: 'dataVolume.sizeGiB',
    when: hasDataVolume,
    test: (v, n) => isInt(v, limitsOf(n).minGiB, limitsOf(n).maxGiB),
    accepted: (n) =>
      `a whole number of GiB from ${limitsOf(n).minGiB} to ${limitsOf(n).maxGiB} for ${dataVolumeOf(n).type}`,
  },
  {
    path: 'dataVolume.deviceName',
    when: hasDataVolume,
    test: (v) => matches(PATTERNS.deviceName, v),
    accepted: 'a device name from /dev/sdf to /dev/sdp or /dev/xvdf to /dev/xvdp',
  },
  {
    path: 'dataVolume.iops',
    when: (n) => hasDataVolume(n) && dataVolumeOf(n).iops !== undefined && limitsOf(n).iops === undefined,
    problems: (n, at) => [
      `${at}.dataVolume.iops is set, but ${dataVolumeOf(n).type} volumes do not take provisioned IOPS; remove it or use gp3, io1 or io2`,
    ],
  },
  {
    path: 'dataVolume.iops',
    when: (n) => hasDataVolume(n) && dataVolumeOf(n).iops !== undefined && limitsOf(n).iops !== undefined,
    test: (v, n) => isInt(v, iopsRange(n).min, iopsRange(n).max),
    accepted: (n) => {
      const r = iopsRange(n);
      const v = dataVolumeOf(n);
      return `a whole number from ${r.min} to ${r.max} for a ${v.sizeGiB} GiB ${v.type} volume (${r.perGiB} IOPS per GiB, at most ${r.most})`;
    },
  },
  {
    path: 'dataVolume.iops',
    when: (n) =>
      hasDataVolume(n) &&
      dataVolumeOf(n).iops === undefined &&
      (dataVolumeOf(n).type === 'io1' || dataVolumeOf(n).type === 'io2'),
    problems: (n, at) => [`${at}.dataVolume.iops is required for ${dataVolumeOf(n).type} volumes`],
  },
  {
    path: 'dataVolume.throughput',
    when: (n) =>
      hasDataVolume(n) && dataVolumeOf(n).throughput !== undefined && limitsOf(n).throughput === undefined,
    problems: (_n, at) => [
      `${at}.dataVolume.throughput is set, but only gp3 volumes take a throughput; remove it`,
    ],
  },
  {
    path: 'dataVolume.throughput',
    when: (n) =>
      hasDataVolume(n) && dataVolumeOf(n).throughput !== undefined && limitsOf(n).throughput !== undefined,
    test: (v, n) => isInt(v, throughputRange(n).min, throughputRange(n).max),
    accepted: (n) => {
      const r = throughputRange(n);
      const perIops = limitsOf(n).throughput?.perIops;
      const most = limitsOf(n).throughput?.max;
      return `a whole number of MiB/s from ${r.min} to ${r.max} for ${r.iops} IOPS (at most ${perIops} MiB/s per IOPS, ${most} in all)`;
    },
  },
];

/** Reads, merges, defaults and validates the configuration from a construct's CDK context. */
export function loadConfig(tryGetContext: (key: string) => unknown): StemeDbConfig {
  return resolveConfig(readRawConfig(tryGetContext('stemedb'), tryGetContext('stemedbConfig')));
}
