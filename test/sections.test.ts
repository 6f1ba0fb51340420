import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The routing table and the kinds it routes (contracts/), as the router and the stack use them.
import { ALERT_KINDS, NEVER_ROUTED_KINDS } from '../contracts/alarms';
import { REMEDIATION_SECTIONS } from '../contracts/documents';
import { routeTable } from '../contracts/routing';
import {
  ALARM_ROUTING,
  AUTOMATION_DOCUMENTS,
  COMMAND_DOCUMENTS,
  FILE_OWNERS,
  type FileOwner,
  inDeploymentOrder,
  ROUTED_ALARM_KINDS,
  ROUTER_STARTABLE_AUTOMATIONS,
  type RoutedAlarmKind,
  SECTION_LAMBDAS,
  SECTIONS,
  sectionOfAutomation,
} from '../contracts/sections';
import { DEFAULT_CONFIG } from '../lib/config';
import { codeSpans, tableRows } from './support/markdown';
import { claimProblems, filesNeedingAnOwner, unlistedTestProblems } from './support/section-claims';

const ROOT = join(__dirname, '..');

describe('the section registry', () => {
  it('gives every owner a unique id and names each document and Lambda once', () => {
    const ids = FILE_OWNERS.map((o) => o.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const key of ['automations', 'commands', 'lambdas'] as const) {
      const all = FILE_OWNERS.flatMap((o) => o[key]);
      expect(all.length, key).toBe(new Set(all).size);
    }
  });

  it('deploys every document of every section exactly once, in the historical order first', () => {
    expect([...COMMAND_DOCUMENTS].sort()).toEqual(SECTIONS.flatMap((s) => s.commands).sort());
    expect([...AUTOMATION_DOCUMENTS].sort()).toEqual(SECTIONS.flatMap((s) => s.automations).sort());
    // The order of the deployed stack's resources (the template of a deployed stack must not change).
    expect(COMMAND_DOCUMENTS.slice(0, 3)).toEqual(['DiskReport', 'ExpandVolume', 'ArchiveWal']);
    expect(AUTOMATION_DOCUMENTS.slice(-2)).toEqual(['AddDataVolume', 'RetireDataVolume']);
  });

  it('puts names the historical order does not know after it, in registry order', () => {
    expect(inDeploymentOrder(['D', 'B', 'A', 'C'], ['A', 'B', 'X'])).toEqual(['A', 'B', 'D', 'C']);
    expect(inDeploymentOrder(['B', 'A'], [])).toEqual(['B', 'A']);
    expect(inDeploymentOrder([], ['A'])).toEqual([]);
  });

  it('finds the section of an Automation document', () => {
    expect(sectionOfAutomation('RetireDataVolume')?.id).toBe('5b');
    expect(sectionOfAutomation('ExpandVolume')?.title).toBe('§5A Volume expansion');
    expect(sectionOfAutomation('Nope')).toBeUndefined();
  });

  it('imports nothing, so lib/ and lambda/ can both use it', () => {
    const source = readFileSync(join(ROOT, 'contracts', 'sections.ts'), 'utf8');
    expect(source).not.toMatch(/^\s*import\b/m);
    expect(source).not.toMatch(/\brequire\(/);
  });

  it('names the Lambdas of the sections and, apart, the alarm router', () => {
    expect(SECTION_LAMBDAS).toEqual(['expand-volume', 'wait-for-volume-modification', 'verify-archive']);
    expect(ALARM_ROUTING.lambdas).toEqual(['alarm-router']);
  });
});

describe('every document, script and Lambda handler belongs to exactly one section', () => {
  it('in this repository', () => {
    const files = filesNeedingAnOwner(ROOT);
    expect(files.length).toBeGreaterThanOrEqual(34);
    expect(claimProblems(ROOT, files, FILE_OWNERS)).toEqual([]);
  });

  it('and each test named after a section file is listed by that section', () => {
    const tests = readdirSync(join(ROOT, 'test'))
      .filter((f) => f.endsWith('.test.ts'))
      .map((f) => `test/${f}`);
    expect(unlistedTestProblems(tests, FILE_OWNERS)).toEqual([]);
  });

  describe('the check fails', () => {
    let root: string;
    const owner = (id: string, parts: Partial<FileOwner>): FileOwner => ({
      id,
      automations: [],
      commands: [],
      lambdas: [],
      tests: [],
      ...parts,
    });
    beforeAll(() => {
      root = mkdtempSync(join(tmpdir(), 'stemedb-claims-'));
      for (const dir of ['ssm-documents/scripts/lib', 'lambda/shared', 'test'])
        mkdirSync(join(root, dir), { recursive: true });
      for (const file of [
        'ssm-documents/fix-disk.command.yml',
        'ssm-documents/scripts/fix-disk.sh',
        'ssm-documents/fix-disk.automation.yml',
        'ssm-documents/stray.command.yml',
        'ssm-documents/scripts/stray.sh',
        'ssm-documents/scripts/lib/common.sh',
        'lambda/fix-it.ts',
        'lambda/orphan.ts',
        'lambda/shared/helpers.ts',
        'test/fix-disk.test.ts',
      ])
        writeFileSync(join(root, file), '');
    });
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    it('for a file no section claims, one claimed twice, and a claimed file or test that does not exist', () => {
      const files = filesNeedingAnOwner(root);
      expect(files).not.toContain('ssm-documents/scripts/lib/common.sh');
      expect(files).not.toContain('lambda/shared/helpers.ts');
      const owners = [
        owner('a', { commands: ['FixDisk'], automations: ['FixDisk'], lambdas: ['fix-it'] }),
        owner('b', { lambdas: ['fix-it', 'gone'], tests: ['test/fix-disk.test.ts', 'test/missing.test.ts'] }),
        owner('c', { tests: ['test/fix-disk.test.ts'] }),
      ];
      expect(claimProblems(root, files, owners).sort()).toEqual(
        [
          'ssm-documents/stray.command.yml is claimed by no section',
          'ssm-documents/scripts/stray.sh is claimed by no section',
          'lambda/orphan.ts is claimed by no section',
          'lambda/fix-it.ts is claimed by 2 sections: a, b',
          'lambda/gone.ts (claimed by b) does not exist',
          'test/fix-disk.test.ts is listed by 2 sections: b, c',
          'test/missing.test.ts (listed by b) does not exist',
        ].sort(),
      );
    });

    it('for a test named after a section file that the section does not list', () => {
      const owners = [owner('a', { commands: ['FixDisk'] })];
      expect(unlistedTestProblems(['test/fix-disk.test.ts', 'test/fix-disk-more.test.ts'], owners)).toEqual([
        'test/fix-disk.test.ts is named after a file of a, which does not list it',
        'test/fix-disk-more.test.ts is named after a file of a, which does not list it',
      ]);
      expect(
        unlistedTestProblems(
          ['test/fix-disk.test.ts', 'test/fix-diskette.test.ts'],
          [owner('a', { commands: ['FixDisk'], tests: ['test/fix-disk.test.ts'] })],
        ),
      ).toEqual([]);
    });
  });
});

describe("the router's routes agree with the registry", () => {
  const PREFIX = 'StemeDB';
  const documentName = (name: string) => `${PREFIX}-${name}`;

  it('names the same alarm kinds as the router (all but those that never route)', () => {
    expect([...ROUTED_ALARM_KINDS].sort()).toEqual(
      ALERT_KINDS.filter((k) => !(NEVER_ROUTED_KINDS as ReadonlySet<string>).has(k)).sort(),
    );
  });

  it('lets the configuration route to exactly the sections the router may start', () => {
    expect(REMEDIATION_SECTIONS).toEqual(ROUTER_STARTABLE_AUTOMATIONS);
    const byHand = SECTIONS.filter((s) => !s.routerMayStart).flatMap((s) => s.automations);
    expect(byHand).toEqual(['AddDataVolume', 'RetireDataVolume']);
  });

  it("says which alarm kinds start each section with the default configuration (the route's documents)", () => {
    const routes = routeTable(PREFIX, DEFAULT_CONFIG.remediation);
    const fromRoutes = new Map<string, Set<string>>();
    for (const [kind, docs] of Object.entries(routes)) {
      for (const doc of docs) fromRoutes.set(doc, (fromRoutes.get(doc) ?? new Set()).add(kind));
    }
    for (const section of SECTIONS) {
      const entry = documentName(section.automations[0]);
      expect([...(fromRoutes.get(entry) ?? [])].sort(), section.title).toEqual(
        [...section.routedFrom].sort(),
      );
      for (const other of section.automations.slice(1))
        expect(fromRoutes.has(documentName(other)), `${section.title} ${other}`).toBe(false);
    }
  });

  it('routes, whatever section the configuration names, only to documents the router may start', () => {
    const startable = new Set(ROUTER_STARTABLE_AUTOMATIONS.map(documentName));
    for (const section of [...REMEDIATION_SECTIONS, '']) {
      const routes = routeTable(PREFIX, {
        warning: section,
        critical: section,
        emergencySpace: section,
        inodes: section,
        fillsSoon: section,
      });
      for (const [kind, docs] of Object.entries(routes) as Array<[RoutedAlarmKind, readonly string[]]>) {
        for (const doc of docs) expect(startable.has(doc), `${kind} → ${doc}`).toBe(true);
      }
    }
  });
});

describe("the README's runbook table is checked against the registry", () => {
  const rows = tableRows(readFileSync(join(ROOT, 'README.md'), 'utf8'), 'Runbook section');

  it('has one row per section, in registry order, with its title', () => {
    expect(rows.map((r) => r[0])).toEqual(SECTIONS.map((s) => s.title));
  });

  it.each(SECTIONS.map((s) => [s.title, s] as const))(
    '%s: names its Automation documents, and its Command documents and Lambdas in what runs',
    (_title, section) => {
      const row = rows.find((r) => r[0] === section.title) ?? [];
      expect(codeSpans(row[1] ?? '')).toEqual(section.automations);
      const runs = codeSpans(row[2] ?? '');
      for (const command of section.commands) expect(runs).toContain(`Host-${command}`);
      for (const lambda of section.lambdas) expect(runs).toContain(lambda);
    },
  );

  it('mentions in what runs only Command documents the stack deploys', () => {
    for (const row of rows) {
      for (const span of codeSpans(row[2] ?? '').filter((s) => s.startsWith('Host-')))
        expect(COMMAND_DOCUMENTS, row[0]).toContain(span.slice('Host-'.length));
    }
  });
});
