/**
 * One test deployment for the section tests' Automation documents: the value each `${Placeholder}`
 * gets, the instance the walks run on, and the loader that gives a document the values of the
 * placeholders it has (the loader refuses a substitution no placeholder uses), so every section
 * test loads its document the same way instead of each keeping its own table.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  type AutomationDocumentContent,
  defaultAutomationDefinitionFile,
  type FailureTail,
  failureTailSteps,
  loadAutomationDocumentContent,
  placeholdersIn,
  SHARED_SUBSTITUTIONS,
} from '../../lib/automation-document';
import { REPO_ROOT } from '../../lib/command-document';
import { type Simulation, validateAutomationDocument } from './automation-validator';

/** The test deployment's value of every placeholder a section document may have. */
export const TEST_SUBSTITUTIONS: Readonly<Record<string, string>> = {
  Prefix: 'StemeDB',
  DataMount: '/data',
  WalDir: '/data/wal',
  DbDir: '/data/db',
  BackupDir: '/backups',
  ServiceName: 'stemedb-api',
  HealthUrl: 'http://localhost:18180/v1/health',
  BaseUrl: 'http://localhost:18180',
  RecoveredUsedPercent: '80',
  RecoveredInodesFreePercent: '10',
  WalRetentionDays: '7',
  AutomationRoleArn: 'arn:aws:iam::123456789012:role/StemeDB-automation',
  TopicArn: 'arn:aws:sns:eu-west-1:123456789012:StemeDB-disk',
};

/** The instance the section tests' Automation walks run on. */
export const TEST_INSTANCE = 'i-0123456789abcdef0';

/**
 * The Automation document `name` (from its default definition file) with the test deployment's
 * value, or the one in `overrides`, for each placeholder it and its failure tail have. Throws
 * naming a placeholder neither gives a value for.
 */
export function loadSectionAutomation(
  name: string,
  overrides: Readonly<Record<string, string>> = {},
): AutomationDocumentContent {
  const raw = parseYaml(readFileSync(join(REPO_ROOT, defaultAutomationDefinitionFile(name)), 'utf8')) as {
    failureTail?: FailureTail;
  };
  const tail = raw.failureTail === undefined ? [] : failureTailSteps(name, raw.failureTail);
  const values = { ...TEST_SUBSTITUTIONS, ...overrides };
  const substitutions: Record<string, string> = {};
  for (const placeholder of placeholdersIn([raw, tail])) {
    if (Object.hasOwn(SHARED_SUBSTITUTIONS, placeholder)) continue;
    const value = values[placeholder];
    if (value === undefined) throw new Error(`${name}: no test value for the placeholder \${${placeholder}}`);
    substitutions[placeholder] = value;
  }
  return loadAutomationDocumentContent(name, { substitutions });
}

/**
 * Registers the test `is a valid Automation document`: the document `load` gives (when the test
 * runs) passes every check of the validator.
 */
export function isAValidAutomationDocument(load: () => unknown): void {
  test('is a valid Automation document', () => {
    expect(validateAutomationDocument(load())).toEqual([]);
  });
}

/** The SNS notification a walk's step `step` published: its Subject and Message as resolved. */
export interface Notification {
  readonly Subject?: string;
  readonly Message: string;
}

/** What step `step` published in the walk `sim`; throws naming the step when it did not run. */
export function notificationOf(sim: Simulation, step: string): Notification {
  const inputs = sim.inputs[step];
  if (inputs === undefined) throw new Error(`step ${step} did not run: ${sim.path.join(' → ')}`);
  return inputs as Notification;
}
