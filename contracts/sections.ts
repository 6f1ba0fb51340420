/**
 * The section registry: one entry per section of the runbook "Disk Full"
 * (`../shared/runbook-disk-full.md`), naming everything that implements it. The stack builds the
 * documents and Lambdas from it (lib/disk-remediation.ts), and test/sections.test.ts checks the
 * router's routes, the README's runbook table and the files in `ssm-documents/` and `lambda/`
 * against it. Adding a section is one entry here plus its files (YAML, script, test).
 *
 * File names follow from the names here: Command document `Name` is
 * `ssm-documents/<kebab-name>.command.yml` with `ssm-documents/scripts/<kebab-name>.sh`, deployed
 * as `<prefix>-Host-<Name>`; Automation document `Name` is `ssm-documents/<kebab-name>.automation.yml`,
 * deployed as `<prefix>-<Name>`; Lambda `name` is `lambda/<name>.ts`, deployed as `<prefix>-<name>`.
 *
 * This module sits below `lib/` and `lambda/`: it imports nothing.
 */

/**
 * The alarm kinds a route may name (the router's `ROUTE_KINDS` but `no-data`, which never routes;
 * test/sections.test.ts checks they agree).
 */
export const ROUTED_ALARM_KINDS = [
  'warning',
  'critical',
  'inode-warning',
  'emergency-space',
  'emergency-inodes',
  'fills-soon',
] as const;
export type RoutedAlarmKind = (typeof ROUTED_ALARM_KINDS)[number];

/** What one part of the code base owns: each document, script and Lambda has exactly one owner. */
export interface FileOwner {
  /** Short key, unique: `quick-diagnosis`, `1`, `5a`, `validation`, `alarm-routing`. */
  readonly id: string;
  /** Automation documents (PascalCase), the entry point first. */
  readonly automations: readonly string[];
  /** Command documents (PascalCase), each with its YAML and its script. */
  readonly commands: readonly string[];
  /** Lambda handlers (`lambda/<name>.ts`, kebab-case) that only this owner's documents invoke. */
  readonly lambdas: readonly string[];
  /** The test files (from the repository root) that test this owner's files. */
  readonly tests: readonly string[];
}

/** One runbook section. */
export interface RunbookSection extends FileOwner {
  /** The section's heading in the runbook, verbatim. */
  readonly runbookHeading: string;
  /** The section as the README's runbook table names it (its first column). */
  readonly title: string;
  /**
   * The alarm kinds whose route, with the default configuration (lib/config.ts `DEFAULT_CONFIG`),
   * starts this section's entry point: as the kind's first document, or as the next step of its
   * chain when the alarm stays in ALARM. Empty when no alarm starts it by default.
   */
  readonly routedFrom: readonly RoutedAlarmKind[];
  /**
   * Whether the router may start the section's Automation documents: a `remediation.*` config key
   * may name them (lib/config.ts `REMEDIATION_SECTIONS`) and the router's role may start them.
   * False for a section a human must decide to run.
   */
  readonly routerMayStart: boolean;
}

/** The runbook's sections in its order. */
export const SECTIONS = [
  {
    id: 'quick-diagnosis',
    runbookHeading: 'Quick Diagnosis',
    title: 'Quick Diagnosis',
    automations: ['DiagnoseDiskFull'],
    commands: ['DiskReport'],
    lambdas: [],
    routedFrom: [],
    routerMayStart: true,
    tests: ['test/diagnose-disk-full.automation.test.ts', 'test/disk-report.command.test.ts'],
  },
  {
    id: '1',
    runbookHeading: '§1. Emergency Cleanup (Disk >98%)',
    title: '§1 Emergency cleanup',
    automations: ['EmergencyCleanup'],
    commands: ['EmergencyCleanup'],
    lambdas: [],
    routedFrom: ['emergency-space'],
    routerMayStart: true,
    tests: ['test/emergency-cleanup.test.ts'],
  },
  {
    id: '2',
    runbookHeading: '§2. WAL Cleanup (Planned)',
    title: '§2 WAL cleanup',
    automations: ['WalCleanup'],
    commands: ['WalCleanup'],
    lambdas: [],
    routedFrom: [],
    routerMayStart: true,
    tests: ['test/wal-cleanup.test.ts'],
  },
  {
    id: '3',
    runbookHeading: '§3. Database Compaction',
    title: '§3 Compaction',
    automations: ['CompactDatabase'],
    commands: ['CompactDatabase'],
    lambdas: [],
    routedFrom: [],
    routerMayStart: true,
    tests: ['test/compact-database.test.ts'],
  },
  {
    id: '4',
    runbookHeading: '§4. Inode Exhaustion',
    title: '§4 Inode exhaustion',
    automations: ['InodeCleanup'],
    commands: ['InodeCleanup'],
    lambdas: [],
    routedFrom: ['inode-warning', 'emergency-inodes'],
    routerMayStart: true,
    tests: ['test/inode-cleanup.test.ts'],
  },
  {
    id: '5a',
    runbookHeading: 'Resolution A: Expand existing volume (AWS EBS)',
    title: '§5A Volume expansion',
    automations: ['ExpandVolume'],
    commands: ['ExpandVolume'],
    lambdas: ['expand-volume', 'wait-for-volume-modification'],
    routedFrom: ['critical', 'emergency-space'],
    routerMayStart: true,
    tests: [
      'test/expand-volume.automation.test.ts',
      'test/expand-volume.lambda.test.ts',
      'test/expand-volume.moto.test.ts',
      'test/sizing-policy.test.ts',
      'test/wait-for-volume-modification.lambda.test.ts',
      'test/expand-volume.command.test.ts',
    ],
  },
  {
    // AddDataVolume stops the service for the final copy and RetireDataVolume detaches a volume:
    // a human decides to run them.
    id: '5b',
    runbookHeading: 'Resolution B: Add secondary volume',
    title: '§5B Move to a new volume (by hand)',
    automations: ['AddDataVolume', 'RetireDataVolume'],
    commands: ['MigrateDataVolume'],
    lambdas: [],
    routedFrom: [],
    routerMayStart: false,
    tests: ['test/add-data-volume.automation.test.ts', 'test/migrate-data-volume.command.test.ts'],
  },
  {
    id: '5c',
    runbookHeading: 'Resolution C: Archive old data to S3',
    title: '§5C Archive to S3',
    automations: ['ArchiveWal'],
    commands: ['ArchiveWal', 'DeleteArchivedWal'],
    lambdas: ['verify-archive'],
    routedFrom: ['warning', 'critical', 'fills-soon'],
    routerMayStart: true,
    tests: [
      'test/archive-wal.automation.test.ts',
      'test/archive-wal.test.ts',
      'test/archive-wal-faults.test.ts',
      'test/archive-wal-params.test.ts',
      'test/archive-wal-scale.test.ts',
      'test/verify-archive.lambda.test.ts',
      'test/delete-archived-wal.test.ts',
    ],
  },
  {
    id: 'validation',
    runbookHeading: 'Validation',
    title: 'Validation',
    automations: ['ValidateDiskHealth'],
    commands: ['ValidateDiskHealth'],
    lambdas: [],
    routedFrom: [],
    routerMayStart: true,
    tests: ['test/validate-disk-health.test.ts'],
  },
] as const satisfies readonly RunbookSection[];

/**
 * Not a runbook section: the alarm router, which starts the sections' documents when an alarm
 * fires. It owns its Lambda and its tests, so that every handler has exactly one owner.
 */
export const ALARM_ROUTING = {
  id: 'alarm-routing',
  automations: [],
  commands: [],
  lambdas: ['alarm-router'],
  tests: ['test/alarm-router.test.ts', 'test/alarm-to-automation.test.ts', 'test/alertmanager-event.test.ts'],
} as const satisfies FileOwner;

/**
 * Not a runbook section with an Automation either: the runbook's "Prevention" on the hosts, two
 * Command documents that lib/prevention-documents.ts deploys with their opt-in State Manager
 * associations (no alarm and no Automation runs them; an operator may, with Run Command).
 */
export const PREVENTION = {
  id: 'prevention',
  automations: [],
  commands: ['JournaldLimits', 'StorageSettings'],
  lambdas: [],
  tests: [
    'test/journald-limits.test.ts',
    'test/storage-settings.test.ts',
    'test/prevention-documents.test.ts',
  ],
} as const satisfies FileOwner;

/** Every owner of documents, scripts and Lambdas: the sections, the alarm routing and the prevention. */
export const FILE_OWNERS: readonly FileOwner[] = [...SECTIONS, ALARM_ROUTING, PREVENTION];

type Section = (typeof SECTIONS)[number];
export type SectionId = Section['id'];
/** A Command document of some section (deployed as `<prefix>-Host-<Name>`). */
export type CommandDocumentName = Section['commands'][number];
/** An Automation document of some section (deployed as `<prefix>-<Name>`). */
export type AutomationDocumentName = Section['automations'][number];
/** A Lambda handler of some section (the alarm router is not one). */
export type SectionLambdaName = Section['lambdas'][number];

/**
 * The order the stack has created documents in since before this registry: the order of their
 * resources in the template and of the automation role's SendCommand resources. Kept so that the
 * template of a deployed stack does not change; the documents of sections added later follow in
 * registry order, so a new section needs no entry here.
 */
const FIRST_DEPLOYED_COMMANDS: readonly CommandDocumentName[] = [
  'DiskReport',
  'ExpandVolume',
  'ArchiveWal',
  'DeleteArchivedWal',
  'WalCleanup',
  'ValidateDiskHealth',
  'CompactDatabase',
  'EmergencyCleanup',
  'InodeCleanup',
  'MigrateDataVolume',
];
const FIRST_DEPLOYED_AUTOMATIONS: readonly AutomationDocumentName[] = [
  'DiagnoseDiskFull',
  'EmergencyCleanup',
  'WalCleanup',
  'CompactDatabase',
  'InodeCleanup',
  'ExpandVolume',
  'ArchiveWal',
  'ValidateDiskHealth',
  'AddDataVolume',
  'RetireDataVolume',
];

/** `names` (registry order, no duplicates) in deployment order: `first` as far as it names them, then the rest. */
export function inDeploymentOrder<T extends string>(names: readonly T[], first: readonly T[]): T[] {
  const known = new Set(names);
  const head = first.filter((n) => known.has(n));
  const placed = new Set(head);
  return [...head, ...names.filter((n) => !placed.has(n))];
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/** Every Command document of every section, in deployment order. */
export const COMMAND_DOCUMENTS: readonly CommandDocumentName[] = inDeploymentOrder(
  unique(SECTIONS.flatMap((s): readonly CommandDocumentName[] => s.commands)),
  FIRST_DEPLOYED_COMMANDS,
);

/** Every Automation document of every section, in deployment order. */
export const AUTOMATION_DOCUMENTS: readonly AutomationDocumentName[] = inDeploymentOrder(
  unique(SECTIONS.flatMap((s): readonly AutomationDocumentName[] => s.automations)),
  FIRST_DEPLOYED_AUTOMATIONS,
);

/** An Automation document of a section with `routerMayStart`: one the router may start. */
export type RouterStartableAutomation = Extract<Section, { routerMayStart: true }>['automations'][number];

/** The Automation documents the router may start (of sections with `routerMayStart`), in deployment order. */
export const ROUTER_STARTABLE_AUTOMATIONS: readonly RouterStartableAutomation[] = AUTOMATION_DOCUMENTS.filter(
  (name): name is RouterStartableAutomation =>
    SECTIONS.some((s) => s.routerMayStart && (s.automations as readonly string[]).includes(name)),
);

/** Every section's Lambda handlers, in registry order. */
export const SECTION_LAMBDAS: readonly SectionLambdaName[] = unique(
  SECTIONS.flatMap((s): readonly SectionLambdaName[] => s.lambdas),
);

/** The section whose Automation documents include `name`, if any. */
export function sectionOfAutomation(name: string): RunbookSection | undefined {
  return SECTIONS.find((s) => (s.automations as readonly string[]).includes(name));
}
