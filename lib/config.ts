import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type DiskThresholds, RUNBOOK_THRESHOLDS, thresholdProblems } from './thresholds';

/**
 * The app's configuration, typed and validated in one place.
 *
 * Sources, later wins: the `stemedb` object in `cdk.json` context (or `-c stemedb='{...}'`),
 * then a JSON file given with `-c stemedbConfig=PATH`. Nested objects (`thresholds`,
 * `expansion`, `wal`, `snapshots`, `archive`, `remediation`, `prevention` and its `journald` and
 * `storage`) merge key by key; `nodes` and `notifyEmails` are replaced whole.
 */

/** EBS volume types the data volume may use. */
export type EbsVolumeType = 'gp3' | 'gp2' | 'io1' | 'io2' | 'st1' | 'sc1' | 'standard';

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
}

/** How the expand-volume Lambda sizes a volume. */
export interface ExpansionConfig {
  /** Grow by at least this % of the current size. @default 50 */
  readonly growPercent: number;
  /** Grow by at least this many GiB. @default 10 */
  readonly minGrowGiB: number;
  /** Never grow beyond this size (a cost guard); also capped by the type's maximum. @default 4096 */
  readonly maxSizeGiB: number;
  /** Take a snapshot before modifying the volume. @default true */
  readonly snapshotBeforeExpand: boolean;
  /**
   * Pre-expansion snapshots kept per volume: after taking a new one, expand-volume deletes this
   * deployment's older `completed` pre-expansion snapshots of the volume beyond the newest this many
   * (the one just taken is never deleted and not counted). @default 3
   */
  readonly snapshotsKept: number;
  /**
   * With snapshotsKept: a snapshot beyond the newest `snapshotsKept` is deleted only once it is at
   * least this many days old (0: as soon as it is beyond them). @default 0
   */
  readonly snapshotsDeleteAfterDays: number;
  /**
   * Early warning: when a volume is, after an expansion, within this % of its cap (maxSizeGiB or
   * the type's maximum), ExpandVolume notifies that expansions will soon be refused (0: only once
   * at the cap). @default 25
   */
  readonly warnWithinPercent: number;
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
   * The kill switch's initial value (the SSM parameter `/<prefix>/automation-mode`, which the
   * router reads at each invocation, so operators flip it without a deploy): `act` starts the
   * routed documents; `observe` starts nothing, logs each decision as `observed` with the document
   * it would have started and notifies the topic once per transition; `off` starts nothing and
   * notifies nothing (decisions logged as `automation-off`; the alarms' own notifications still go
   * out). A missing or invalid parameter value is read as `observe`. @default 'act'
   */
  readonly mode: AutomationMode;
}

/** The router's kill switch: see {@link RemediationConfig.mode}. */
export const AUTOMATION_MODES = ['act', 'observe', 'off'] as const;
export type AutomationMode = (typeof AUTOMATION_MODES)[number];

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
  /** Amazon Managed Service for Prometheus workspace that receives the rules. @default none */
  readonly prometheusWorkspaceId?: string;
  /** @default [] (synth still succeeds and warns) */
  readonly nodes: readonly NodeConfig[];
}

export const DEFAULT_CONFIG: StemeDbConfig = {
  prefix: 'StemeDB',
  dataMount: '/data',
  walDir: '/data/wal',
  dbDir: '/data/db',
  backupDir: '/backups',
  configFile: '/etc/stemedb/config.toml',
  serviceName: 'stemedb-api',
  healthUrl: 'http://localhost:18180/v1/health',
  thresholds: RUNBOOK_THRESHOLDS,
  expansion: {
    growPercent: 50,
    minGrowGiB: 10,
    maxSizeGiB: 4096,
    snapshotBeforeExpand: true,
    snapshotsKept: 3,
    snapshotsDeleteAfterDays: 0,
    warnWithinPercent: 25,
  },
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
  nodes: [],
};

/** Per volume type: size limits (GiB) and, where provisioned, IOPS and throughput limits. */
export const VOLUME_LIMITS: Readonly<
  Record<
    EbsVolumeType,
    {
      readonly minGiB: number;
      readonly maxGiB: number;
      readonly iops?: { readonly min: number; readonly max: number; readonly perGiB: number };
      readonly throughput?: { readonly min: number; readonly max: number; readonly perIops: number };
    }
  >
> = {
  gp3: {
    minGiB: 1,
    maxGiB: 65_536,
    iops: { min: 3000, max: 80_000, perGiB: 500 },
    throughput: { min: 125, max: 2000, perIops: 0.25 },
  },
  io2: { minGiB: 4, maxGiB: 65_536, iops: { min: 100, max: 256_000, perGiB: 1000 } },
  io1: { minGiB: 4, maxGiB: 16_384, iops: { min: 100, max: 64_000, perGiB: 50 } },
  gp2: { minGiB: 1, maxGiB: 16_384 },
  st1: { minGiB: 125, maxGiB: 16_384 },
  sc1: { minGiB: 125, maxGiB: 16_384 },
  standard: { minGiB: 1, maxGiB: 1024 },
};

/** The runbook sections this stack deploys as Automation documents (`<prefix>-<Section>`); the router may start any of them. */
export const REMEDIATION_SECTIONS = [
  'DiagnoseDiskFull',
  'EmergencyCleanup',
  'WalCleanup',
  'CompactDatabase',
  'InodeCleanup',
  'ExpandVolume',
  'ArchiveWal',
  'ValidateDiskHealth',
] as const;

/**
 * CloudFormation's resource limit per stack, and what this stack spends of it, counted in
 * synthesized templates (test/stack.test.ts checks {@link stackResourceCount} against them):
 * the shared side; the CloudWatch agent's install association once there is a node; 12 per node
 * (volume and attachment or the adopted volume's tagging resource and its policy, six alarms,
 * the node policy, the registry entry, the agent configuration parameter and its association: each
 * node publishes to a metrics namespace of its own); the tagging custom resource's Lambda, role
 * and log group once a node adopts a volume; one subscription per email; the Prometheus rule
 * groups namespace; once there is a node, one State Manager association per 50 nodes for each
 * prevention document the configuration opts in to.
 * Until nodes can be spread over several stacks, config refuses more nodes than this allows
 * (synth would fail with TooManyResourcesInStack).
 */
export const STACK_RESOURCE_LIMIT = 500;
export const STACK_RESOURCES = {
  shared: 64,
  withNodes: 1,
  perNode: 12,
  withAdoptedVolume: 3,
  perEmail: 1,
  prometheus: 1,
  preventionAssociationPer50Nodes: 1,
} as const;

type ResourceInputs = Pick<StemeDbConfig, 'nodes' | 'notifyEmails' | 'prometheusWorkspaceId'> & {
  readonly prevention?: PreventionConfig;
};

/** The prevention associations the configuration opts in to (each targets every node). */
function preventionAssociations(c: ResourceInputs): number {
  const p = c.prevention;
  if (!isObject(p) || c.nodes.length === 0) return 0;
  const documents = [p.journald, p.storage].filter((x) => isObject(x) && x.associate === true).length;
  return documents * Math.ceil(c.nodes.length / 50) * STACK_RESOURCES.preventionAssociationPer50Nodes;
}

/** Resources the stack holds apart from the 12 per node, for this configuration. */
function fixedStackResources(c: ResourceInputs): number {
  const r = STACK_RESOURCES;
  return (
    r.shared +
    (c.nodes.length > 0 ? r.withNodes : 0) +
    (c.nodes.some((n) => isObject(n) && n.existingVolumeId !== undefined) ? r.withAdoptedVolume : 0) +
    c.notifyEmails.length * r.perEmail +
    (c.prometheusWorkspaceId !== undefined ? r.prometheus : 0) +
    preventionAssociations(c)
  );
}

/** How many resources the synthesized stack holds for this configuration. */
export function stackResourceCount(c: ResourceInputs): number {
  return fixedStackResources(c) + c.nodes.length * STACK_RESOURCES.perNode;
}

/** Thrown when configuration is invalid; the message lists every problem found. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid StemeDB configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const PATTERNS = {
  name: /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/,
  instanceId: /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/,
  volumeId: /^vol-(?:[0-9a-f]{8}|[0-9a-f]{17})$/,
  availabilityZone: /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}[a-z](?:-[a-z]+-\d[a-z])?$/,
  deviceName: /^\/dev\/(?:sd[f-p]|xvd[f-p])$/,
  prefix: /^[A-Za-z][A-Za-z0-9]{0,19}$/,
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
const PATH_KEYS = ['dataMount', 'walDir', 'dbDir', 'backupDir', 'configFile'] as const;

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

/** Every problem of a `prevention` block (also used by lib/prevention-documents.ts), each naming its key. */
export function preventionProblems(prevention: PreventionConfig): string[] {
  const p: string[] = [];
  if (!isObject(prevention)) return [`prevention must be an object, got ${JSON.stringify(prevention)}`];
  const j = prevention.journald;
  check(
    p,
    journaldSizeOk(j.systemMaxUse),
    'prevention.journald.systemMaxUse',
    j.systemMaxUse,
    'journald\'s SystemMaxUse: digits and K, M, G or T (powers of 1024) from 16M to 16T, such as "500M"',
  );
  check(
    p,
    journaldSpanOk(j.maxRetentionSec),
    'prevention.journald.maxRetentionSec',
    j.maxRetentionSec,
    'journald\'s MaxRetentionSec: digits and s, min, h, day, week, month or year, from 1 hour to 10 years, such as "7day"',
  );
  const s = prevention.storage;
  for (const [key, min, max, unit] of [
    ['compactionIntervalHours', 1, 8760, 'hours'],
    ['compactionThresholdMb', 1, 1_000_000, 'MB'],
    ['backupRetentionDays', 1, 3650, 'days'],
  ] as const) {
    check(
      p,
      isInt(s[key], min, max),
      `prevention.storage.${key}`,
      s[key],
      `a whole number of ${unit} from ${min} to ${max}`,
    );
  }
  for (const [block, key] of [
    ['journald', 'associate'],
    ['storage', 'compactionEnabled'],
    ['storage', 'backupCompressionEnabled'],
    ['storage', 'associate'],
  ] as const) {
    const value = (prevention[block] as unknown as Json)[key];
    check(p, typeof value === 'boolean', `prevention.${block}.${key}`, value, 'true or false');
  }
  check(
    p,
    isInt(prevention.scheduleDays, 1, 30),
    'prevention.scheduleDays',
    prevention.scheduleDays,
    'a whole number of days from 1 to 30',
  );
  return p;
}

function withVolumeDefaults(node: NodeConfig): NodeConfig {
  if (!isObject(node) || !isObject(node.dataVolume)) return node;
  const defaults: Partial<NewDataVolumeConfig> = { type: 'gp3', deviceName: '/dev/sdf' };
  return { ...node, dataVolume: { ...defaults, ...node.dataVolume } };
}

function check(problems: string[], ok: boolean, key: string, value: unknown, accepted: string): void {
  if (!ok) problems.push(`${key} is ${JSON.stringify(value)}; expected ${accepted}`);
}

function isInt(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

function matches(re: RegExp, v: unknown): boolean {
  return typeof v === 'string' && re.test(v);
}

function isSafePath(v: unknown): boolean {
  return matches(PATTERNS.path, v) && !(v as string).split('/').includes('..') && (v as string).length <= 200;
}

/** Every problem in a resolved configuration; empty when valid. Exported for tests. */
export function configProblems(c: StemeDbConfig): string[] {
  const p: string[] = [];
  check(
    p,
    matches(PATTERNS.prefix, c.prefix) && !PATTERNS.reservedPrefix.test(c.prefix),
    'prefix',
    c.prefix,
    'a letter then up to 19 letters or digits, not starting with "AWS", "Amazon" or "amzn" in any case (SSM reserves those document name prefixes)',
  );
  p.push(...pathProblems(c));
  check(
    p,
    matches(PATTERNS.serviceName, c.serviceName),
    'serviceName',
    c.serviceName,
    'a systemd unit name (letters, digits, "@", ".", "_", "-")',
  );
  check(
    p,
    matches(PATTERNS.healthUrl, c.healthUrl) && hasValidPort(c.healthUrl),
    'healthUrl',
    c.healthUrl,
    'an http URL on localhost or 127.0.0.1 with a port from 1 to 65535 if any, such as http://localhost:18180/v1/health',
  );
  if (!isObject(c.thresholds)) {
    p.push(`thresholds must be an object`);
  } else {
    p.push(...thresholdProblems(c.thresholds));
  }

  const e = c.expansion;
  check(
    p,
    isInt(e.growPercent, 1, 1000),
    'expansion.growPercent',
    e.growPercent,
    'a whole number from 1 to 1000',
  );
  check(
    p,
    isInt(e.minGrowGiB, 1, 65_536),
    'expansion.minGrowGiB',
    e.minGrowGiB,
    'a whole number of GiB from 1 to 65536',
  );
  check(
    p,
    isInt(e.maxSizeGiB, 1, 65_536),
    'expansion.maxSizeGiB',
    e.maxSizeGiB,
    'a whole number of GiB from 1 to 65536',
  );
  if (isInt(e.minGrowGiB, 1, 65_536) && isInt(e.maxSizeGiB, 1, 65_536) && e.minGrowGiB > e.maxSizeGiB) {
    p.push(
      `expansion.minGrowGiB (${e.minGrowGiB}) is above expansion.maxSizeGiB (${e.maxSizeGiB}); no expansion could grow by the minimum: lower minGrowGiB or raise maxSizeGiB`,
    );
  }
  check(
    p,
    typeof e.snapshotBeforeExpand === 'boolean',
    'expansion.snapshotBeforeExpand',
    e.snapshotBeforeExpand,
    'true or false',
  );
  check(
    p,
    isInt(e.snapshotsKept, 1, 1000),
    'expansion.snapshotsKept',
    e.snapshotsKept,
    'a whole number of snapshots from 1 to 1000 (kept per volume besides the one just taken)',
  );
  check(
    p,
    isInt(e.snapshotsDeleteAfterDays, 0, 3650),
    'expansion.snapshotsDeleteAfterDays',
    e.snapshotsDeleteAfterDays,
    'a whole number of days from 0 (no wait) to 3650',
  );
  check(
    p,
    isInt(e.warnWithinPercent, 0, 100),
    'expansion.warnWithinPercent',
    e.warnWithinPercent,
    'a whole number from 0 (warn only at the cap) to 100',
  );

  const w = c.wal;
  check(
    p,
    isInt(w.retentionDays, 1, 3650),
    'wal.retentionDays',
    w.retentionDays,
    'a whole number of days from 1 to 3650',
  );
  check(
    p,
    isInt(w.archiveAfterDays, 0, 3650),
    'wal.archiveAfterDays',
    w.archiveAfterDays,
    'a whole number of days from 0 to 3650',
  );
  check(
    p,
    isInt(w.maxSegments, 1, 1_000_000),
    'wal.maxSegments',
    w.maxSegments,
    'a whole number from 1 to 1000000',
  );
  check(
    p,
    isInt(w.segmentSizeMb, 1, 4096),
    'wal.segmentSizeMb',
    w.segmentSizeMb,
    'a whole number of MB from 1 to 4096',
  );

  const s = c.snapshots;
  check(
    p,
    isInt(s.retainCount, 1, 1000),
    'snapshots.retainCount',
    s.retainCount,
    'a whole number from 1 to 1000',
  );
  check(
    p,
    matches(PATTERNS.timeUtc, s.timeUtc),
    'snapshots.timeUtc',
    s.timeUtc,
    'a time of day as HH:MM in UTC, such as "03:00"',
  );

  const a = c.archive;
  check(
    p,
    isInt(a.transitionAfterDays, 30, 3650),
    'archive.transitionAfterDays',
    a.transitionAfterDays,
    'a whole number of days from 30 to 3650 (S3 needs 30 before a colder class)',
  );
  check(
    p,
    isInt(a.noncurrentExpireDays, 1, 3650),
    'archive.noncurrentExpireDays',
    a.noncurrentExpireDays,
    'a whole number of days from 1 to 3650',
  );
  check(
    p,
    isInt(a.objectLockDays, 0, 3650),
    'archive.objectLockDays',
    a.objectLockDays,
    'a whole number of days from 0 (off) to 3650',
  );

  const r = c.remediation;
  for (const key of ['warning', 'critical', 'emergencySpace', 'inodes', 'fillsSoon'] as const) {
    check(
      p,
      r[key] === '' || (REMEDIATION_SECTIONS as readonly string[]).includes(r[key]),
      `remediation.${key}`,
      r[key],
      `"" (none) or one of ${REMEDIATION_SECTIONS.join(', ')}`,
    );
  }
  check(
    p,
    isInt(r.recheckMinutes, 5, 1440),
    'remediation.recheckMinutes',
    r.recheckMinutes,
    'a whole number of minutes from 5 to 1440',
  );
  check(
    p,
    (AUTOMATION_MODES as readonly unknown[]).includes(r.mode),
    'remediation.mode',
    r.mode,
    AUTOMATION_MODES.join(', '),
  );

  p.push(...preventionProblems(c.prevention));

  if (!Array.isArray(c.notifyEmails)) {
    p.push(`notifyEmails is ${JSON.stringify(c.notifyEmails)}; expected a list of email addresses`);
  } else {
    const seenEmails = new Map<string, number>();
    c.notifyEmails.forEach((m, i) => {
      check(
        p,
        matches(PATTERNS.email, m),
        `notifyEmails[${i}]`,
        m,
        'an email address such as ops@example.com',
      );
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
  }
  if (c.prometheusWorkspaceId !== undefined) {
    check(
      p,
      matches(PATTERNS.workspaceId, c.prometheusWorkspaceId),
      'prometheusWorkspaceId',
      c.prometheusWorkspaceId,
      'an Amazon Managed Service for Prometheus workspace ID such as ws-12345678-abcd-ef01-2345-6789abcdef01',
    );
  }

  if (!Array.isArray(c.nodes)) {
    p.push(`nodes is ${JSON.stringify(c.nodes)}; expected a list of nodes`);
    return p;
  }
  const seenNames = new Set<string>();
  const seenInstances = new Set<string>();
  const seenVolumes = new Map<string, number>();
  c.nodes.forEach((n, i) => {
    p.push(...nodeProblems(n, `nodes[${i}]`));
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
  if (Array.isArray(c.notifyEmails)) {
    const fixed = fixedStackResources(c);
    const most = Math.floor((STACK_RESOURCE_LIMIT - fixed) / STACK_RESOURCES.perNode);
    if (c.nodes.length > most) {
      p.push(
        `nodes has ${c.nodes.length} entries; one stack holds at most ${most} nodes with this configuration (CloudFormation's ${STACK_RESOURCE_LIMIT} resources per stack: ${fixed} shared, ${STACK_RESOURCES.perNode} per node)`,
      );
    }
  }
  return p;
}

function hasValidPort(url: string): boolean {
  const port = /^http:\/\/[^/:]+:(\d+)\//.exec(url)?.[1];
  return port === undefined || (Number(port) >= 1 && Number(port) <= 65_535);
}

/** The path keys: each a safe, normalised path the documents accept, and no two in conflict. */
function pathProblems(c: StemeDbConfig): string[] {
  const p: string[] = [];
  const ok: Partial<Record<(typeof PATH_KEYS)[number], string>> = {};
  for (const key of PATH_KEYS) {
    const v = c[key];
    if (!isSafePath(v)) {
      p.push(
        `${key} is ${JSON.stringify(v)}; expected an absolute path of letters, digits, ".", "_", "-" and "/" with no ".." segment`,
      );
    } else if (key === 'dataMount' && normalisePath(v) === '/') {
      p.push(
        `dataMount is "/"; expected the data volume's mount point, not / (the root filesystem), such as /data`,
      );
    } else if (normalisePath(v) !== v) {
      p.push(`${key} is ${JSON.stringify(v)}; expected its normal form ${JSON.stringify(normalisePath(v))}`);
    } else if (!PATTERNS.normalPath.test(v)) {
      p.push(
        `${key} is ${JSON.stringify(v)}; expected path segments that start with a letter, digit, "_" or "-" (the SSM documents refuse hidden names), at most 16 segments of up to 128 characters`,
      );
    } else {
      ok[key] = v;
    }
  }
  const { dataMount, walDir, dbDir, backupDir, configFile } = ok;
  const inside = (dir: string, parent: string) => dir.startsWith(`${parent}/`);
  if (dataMount !== undefined) {
    if (walDir === dataMount) {
      p.push(
        `walDir is ${JSON.stringify(walDir)}, the data mount itself (dataMount); expected a directory inside it (ArchiveWal would archive and delete the files at the mount's root)`,
      );
    }
    for (const [key, dir] of [
      ['walDir', walDir],
      ['dbDir', dbDir],
    ] as const) {
      if (dir !== undefined && dir !== dataMount && !inside(dir, dataMount)) {
        p.push(`${key} is ${JSON.stringify(dir)}; expected a directory inside dataMount (${dataMount})`);
      }
    }
    if (dbDir === dataMount) {
      p.push(`dbDir is ${JSON.stringify(dbDir)}; expected a directory inside dataMount (${dataMount})`);
    }
  }
  if (walDir !== undefined && dbDir !== undefined) {
    if (walDir === dbDir) {
      p.push(
        `walDir and dbDir are both ${JSON.stringify(walDir)}; give the WAL its own directory (ArchiveWal would archive and delete database files)`,
      );
    } else if (inside(dbDir, walDir)) {
      p.push(
        `dbDir ${JSON.stringify(dbDir)} is inside walDir ${JSON.stringify(walDir)}; expected separate directories (the WAL automations would treat the database as WAL)`,
      );
    }
  }
  for (const [key, dir] of [
    ['walDir', walDir],
    ['dbDir', dbDir],
  ] as const) {
    if (configFile !== undefined && dir !== undefined && (configFile === dir || inside(configFile, dir))) {
      p.push(
        `configFile ${JSON.stringify(configFile)} is ${configFile === dir ? '' : 'inside '}${key} ${JSON.stringify(dir)}; expected a file outside the WAL and database directories (ArchiveWal archives and deletes every file in walDir, InodeCleanup deletes empty files in dbDir)`,
      );
    }
  }
  if (backupDir !== undefined) {
    if (backupDir === walDir) {
      p.push(
        `backupDir and walDir are both ${JSON.stringify(backupDir)}; expected separate directories (backups would be archived and deleted as WAL, and a fresh backup would hide the newest segment)`,
      );
    }
    if (backupDir === dbDir) {
      p.push(
        `backupDir and dbDir are both ${JSON.stringify(backupDir)}; expected separate directories (EmergencyCleanup deletes old backups there)`,
      );
    }
  }
  return p;
}

function nodeProblems(n: NodeConfig, at: string): string[] {
  const p: string[] = [];
  if (!isObject(n))
    return [
      `${at} is ${JSON.stringify(n)}; expected an object with name, instanceId, availabilityZone and dataVolume or existingVolumeId`,
    ];
  const known = ['name', 'instanceId', 'availabilityZone', 'dataVolume', 'existingVolumeId'];
  for (const key of Object.keys(n)) {
    if (!known.includes(key)) p.push(`${at}.${key} is not a node key; accepted: ${known.join(', ')}`);
  }
  check(
    p,
    matches(PATTERNS.name, n.name),
    `${at}.name`,
    n.name,
    '2 to 32 lower-case letters, digits and "-", starting with a letter and not ending with "-"',
  );
  check(
    p,
    matches(PATTERNS.instanceId, n.instanceId),
    `${at}.instanceId`,
    n.instanceId,
    'an EC2 instance ID such as i-0123456789abcdef0',
  );
  check(
    p,
    matches(PATTERNS.availabilityZone, n.availabilityZone),
    `${at}.availabilityZone`,
    n.availabilityZone,
    'an Availability Zone name such as eu-west-1a',
  );
  const hasNew = n.dataVolume !== undefined;
  const hasExisting = n.existingVolumeId !== undefined;
  if (hasNew === hasExisting) {
    p.push(
      `${at} must have exactly one of dataVolume (a volume the stack creates) and existingVolumeId (a volume it adopts)`,
    );
    return p;
  }
  if (hasExisting) {
    check(
      p,
      matches(PATTERNS.volumeId, n.existingVolumeId),
      `${at}.existingVolumeId`,
      n.existingVolumeId,
      'an EBS volume ID such as vol-0123456789abcdef0',
    );
    return p;
  }
  const v = n.dataVolume as NewDataVolumeConfig;
  if (!isObject(v)) return [...p, `${at}.dataVolume must be an object with sizeGiB`];
  const knownVolume = ['sizeGiB', 'type', 'iops', 'throughput', 'deviceName'];
  for (const key of Object.keys(v)) {
    if (!knownVolume.includes(key))
      p.push(`${at}.dataVolume.${key} is not a data volume key; accepted: ${knownVolume.join(', ')}`);
  }
  const limits = VOLUME_LIMITS[v.type];
  if (limits === undefined) {
    p.push(
      `${at}.dataVolume.type is ${JSON.stringify(v.type)}; expected one of ${Object.keys(VOLUME_LIMITS).join(', ')}`,
    );
    return p;
  }
  check(
    p,
    isInt(v.sizeGiB, limits.minGiB, limits.maxGiB),
    `${at}.dataVolume.sizeGiB`,
    v.sizeGiB,
    `a whole number of GiB from ${limits.minGiB} to ${limits.maxGiB} for ${v.type}`,
  );
  check(
    p,
    matches(PATTERNS.deviceName, v.deviceName),
    `${at}.dataVolume.deviceName`,
    v.deviceName,
    'a device name from /dev/sdf to /dev/sdp or /dev/xvdf to /dev/xvdp',
  );
  if (v.iops !== undefined) {
    if (limits.iops === undefined) {
      p.push(
        `${at}.dataVolume.iops is set, but ${v.type} volumes do not take provisioned IOPS; remove it or use gp3, io1 or io2`,
      );
    } else {
      const max = Math.min(
        limits.iops.max,
        isInt(v.sizeGiB, 1, 65_536) ? v.sizeGiB * limits.iops.perGiB : limits.iops.max,
      );
      check(
        p,
        isInt(v.iops, limits.iops.min, Math.max(limits.iops.min, max)),
        `${at}.dataVolume.iops`,
        v.iops,
        `a whole number from ${limits.iops.min} to ${Math.max(limits.iops.min, max)} for a ${v.sizeGiB} GiB ${v.type} volume (${limits.iops.perGiB} IOPS per GiB, at most ${limits.iops.max})`,
      );
    }
  } else if (v.type === 'io1' || v.type === 'io2') {
    p.push(`${at}.dataVolume.iops is required for ${v.type} volumes`);
  }
  if (v.throughput !== undefined) {
    if (limits.throughput === undefined) {
      p.push(`${at}.dataVolume.throughput is set, but only gp3 volumes take a throughput; remove it`);
    } else {
      const iops = v.iops ?? limits.iops?.min ?? 3000;
      const max = Math.min(limits.throughput.max, Math.floor(iops * limits.throughput.perIops));
      check(
        p,
        isInt(v.throughput, limits.throughput.min, Math.max(limits.throughput.min, max)),
        `${at}.dataVolume.throughput`,
        v.throughput,
        `a whole number of MiB/s from ${limits.throughput.min} to ${Math.max(limits.throughput.min, max)} for ${iops} IOPS (at most ${limits.throughput.perIops} MiB/s per IOPS, ${limits.throughput.max} in all)`,
      );
    }
  }
  return p;
}

/** Reads, merges, defaults and validates the configuration from a construct's CDK context. */
export function loadConfig(tryGetContext: (key: string) => unknown): StemeDbConfig {
  return resolveConfig(readRawConfig(tryGetContext('stemedb'), tryGetContext('stemedbConfig')));
}
