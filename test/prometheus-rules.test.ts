import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generatedFiles, staleFiles } from '../bin/generate-rules';
import { RUNBOOK_THRESHOLDS } from '../contracts/thresholds';
import { PrometheusRuleGroupsNamespace } from '../lib/prometheus-rule-groups-namespace';
import {
  ALARM_KIND_LABEL,
  FILLS_SOON_ALERT,
  type PrometheusAlertRule,
  prometheusRuleGroups,
  renderPrometheusRules,
} from '../lib/prometheus-rules';
import { diskAlarmRules } from '../lib/thresholds';
import { renderThresholdsDoc } from '../lib/thresholds-doc';
import { stackArn } from './support/stack-arn';

const ROOT = resolve(__dirname, '..');
const RULES_FILE = join(ROOT, 'prometheus/stemedb-disk-rules.yml');
const TESTS_DIR = join(ROOT, 'prometheus/tests');
const WORKSPACE_ID = 'ws-12345678-abcd-ef01-2345-6789abcdef01';

function promtool(args: readonly string[], cwd = ROOT): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function promTestFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.test.yml'))
    .map((f) => join(dir, f));
}

function rulesOf(file: {
  groups: readonly { rules: readonly PrometheusAlertRule[] }[];
}): PrometheusAlertRule[] {
  return file.groups.flatMap((g) => g.rules);
}

function rule(rules: readonly PrometheusAlertRule[], name: string): PrometheusAlertRule {
  const found = rules.find((r) => r.alert === name);
  if (found === undefined) throw new Error(`no rule ${name}`);
  return found;
}

const runbookRules = rulesOf(prometheusRuleGroups(RUNBOOK_THRESHOLDS, { dataMount: '/data' }));

describe('generated files', () => {
  it('the committed rules file equals the generator output', () => {
    expect(readFileSync(RULES_FILE, 'utf8')).toBe(
      renderPrometheusRules(RUNBOOK_THRESHOLDS, { dataMount: '/data' }),
    );
  });

  it('the committed thresholds doc equals the generator output', () => {
    expect(readFileSync(join(ROOT, 'docs/thresholds.md'), 'utf8')).toBe(
      renderThresholdsDoc(RUNBOOK_THRESHOLDS, { dataMount: '/data' }),
    );
  });

  it('the generator check mode passes on the committed files', () => {
    const r = spawnSync(join(ROOT, 'node_modules/.bin/tsx'), ['bin/generate-rules.ts', '--check'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('the generator check names a file that differs from its output', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gen-rules-'));
    try {
      mkdirSync(join(dir, 'prometheus'));
      mkdirSync(join(dir, 'docs'));
      writeFileSync(
        join(dir, 'prometheus/stemedb-disk-rules.yml'),
        readFileSync(RULES_FILE, 'utf8').replace('0.2', '0.3'),
      );
      copyFileSync(join(ROOT, 'docs/thresholds.md'), join(dir, 'docs/thresholds.md'));
      copyFileSync(
        join(ROOT, 'prometheus/alertmanager-sns.yml'),
        join(dir, 'prometheus/alertmanager-sns.yml'),
      );
      expect(staleFiles(dir)).toEqual(['prometheus/stemedb-disk-rules.yml']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the generator writes exactly the rules file, the thresholds doc and the Alertmanager example', () => {
    expect(generatedFiles().map((f) => f.path)).toEqual([
      'prometheus/stemedb-disk-rules.yml',
      'docs/thresholds.md',
      'prometheus/alertmanager-sns.yml',
    ]);
  });

  it('the rules file starts with a generated-file header comment', () => {
    expect(readFileSync(RULES_FILE, 'utf8').split('\n')[0]).toBe('# GENERATED FILE: do not edit by hand.');
  });
});

describe('promtool', () => {
  let tmp: string | undefined;
  afterEach(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
    tmp = undefined;
  });

  it('promtool check rules accepts the committed rules file', () => {
    const r = promtool(['check', 'rules', RULES_FILE]);
    expect(r.output).toContain('SUCCESS: 7 rules found');
    expect(r.status).toBe(0);
  });

  it('promtool test rules passes every unit test file', () => {
    const files = promTestFiles(TESTS_DIR);
    expect(files.length).toBeGreaterThanOrEqual(4);
    const r = promtool(['test', 'rules', ...files]);
    expect(r.output).not.toContain('FAILED');
    expect(r.output.match(/SUCCESS/g)?.length).toBe(files.length);
    expect(r.status).toBe(0);
  });

  it('promtool test rules fails when a threshold in the rules file is wrong', () => {
    // Proves the unit tests bite: the warning level moved from 0.2 to 0.21 must be caught.
    tmp = mkdtempSync(join(tmpdir(), 'prom-rules-'));
    const testsCopy = join(tmp, 'tests');
    mkdirSync(testsCopy);
    for (const f of promTestFiles(TESTS_DIR)) copyFileSync(f, join(testsCopy, basename(f)));
    const broken = readFileSync(RULES_FILE, 'utf8').replace('< 0.2\n', '< 0.21\n');
    expect(broken).not.toBe(readFileSync(RULES_FILE, 'utf8'));
    writeFileSync(join(tmp, 'stemedb-disk-rules.yml'), broken);
    const r = promtool(['test', 'rules', ...promTestFiles(testsCopy)]);
    expect(r.output).toContain('FAILED');
    expect(r.status).not.toBe(0);
  });
});

describe('prometheusRuleGroups', () => {
  it('keeps the runbook warning rule with both sides filtered to the data mount', () => {
    expect(rule(runbookRules, 'StemeDBDiskSpaceWarning')).toEqual({
      alert: 'StemeDBDiskSpaceWarning',
      expr: '(node_filesystem_avail_bytes{mountpoint="/data"} / node_filesystem_size_bytes{mountpoint="/data"}) < 0.2',
      for: '15m',
      labels: { severity: 'warning', stemedb_alarm_kind: 'warning' },
      annotations: {
        summary: 'Disk space <20% on /data',
        description: 'Available: {{ $value | humanizePercentage }}',
        runbook: expect.stringContaining('Quick Diagnosis'),
      },
    });
  });

  it('keeps the runbook critical and inode rules with their windows and severities', () => {
    const critical = rule(runbookRules, 'StemeDBDiskSpaceCritical');
    expect([critical.expr, critical.for, critical.labels.severity]).toEqual([
      '(node_filesystem_avail_bytes{mountpoint="/data"} / node_filesystem_size_bytes{mountpoint="/data"}) < 0.1',
      '5m',
      'critical',
    ]);
    const inode = rule(runbookRules, 'StemeDBInodeExhaustion');
    expect([inode.expr, inode.for, inode.labels.severity, inode.annotations.summary]).toEqual([
      '(node_filesystem_files_free{mountpoint="/data"} / node_filesystem_files{mountpoint="/data"}) < 0.1',
      '15m',
      'warning',
      'Inodes <10% available',
    ]);
  });

  it('has one group named stemedb_disk with every alarm kind and the prediction', () => {
    const file = prometheusRuleGroups(RUNBOOK_THRESHOLDS, { dataMount: '/data' });
    expect(file.groups.map((g) => g.name)).toEqual(['stemedb_disk']);
    expect(runbookRules.map((r) => r.labels[ALARM_KIND_LABEL])).toEqual([
      ...diskAlarmRules(RUNBOOK_THRESHOLDS)
        .map((r) => r.kind)
        .filter((k) => k !== 'no-data'),
      'fills-soon',
      'no-data',
    ]);
    for (const r of runbookRules) expect(r.annotations.runbook).toMatch(/^Disk Full runbook: /);
  });

  it('filters every expression to the data mount', () => {
    const rules = rulesOf(prometheusRuleGroups(RUNBOOK_THRESHOLDS, { dataMount: '/srv/stemedb' }));
    for (const r of rules) {
      const selectors = r.expr.match(/node_filesystem_\w+(\{[^}]*\})?/g) ?? [];
      expect(selectors.length).toBeGreaterThan(0);
      for (const s of selectors) expect(s).toMatch(/\{mountpoint="\/srv\/stemedb"\}$/);
    }
  });

  it('changes the expressions when the thresholds change', () => {
    const t = {
      ...RUNBOOK_THRESHOLDS,
      warningFreePercent: 25,
      criticalFreePercent: 7,
      emergencyInodesFree: 5000,
      fillsWithinHours: 8,
      fillsLookbackHours: 1.5,
      warningMinutes: 30,
    };
    const rules = rulesOf(prometheusRuleGroups(t, { dataMount: '/data' }));
    expect(rule(rules, 'StemeDBDiskSpaceWarning').expr).toMatch(/\) < 0\.25$/);
    expect(rule(rules, 'StemeDBDiskSpaceWarning').for).toBe('30m');
    expect(rule(rules, 'StemeDBDiskSpaceCritical').expr).toMatch(/\) < 0\.07$/);
    expect(rule(rules, 'StemeDBInodesNearlyExhausted').expr).toBe(
      'node_filesystem_files_free{mountpoint="/data"} < 5000',
    );
    expect(rule(rules, FILLS_SOON_ALERT).expr).toContain('[90m], 28800) < 0');
    expect(rule(rules, FILLS_SOON_ALERT).expr).toContain('>= 0.07\nand\n');
  });

  it('renders YAML that parses back to the rule groups object', () => {
    const options = { dataMount: '/data' };
    expect(parse(renderPrometheusRules(RUNBOOK_THRESHOLDS, options))).toEqual(
      prometheusRuleGroups(RUNBOOK_THRESHOLDS, options),
    );
  });

  it('refuses a data mount that would break the label matcher', () => {
    expect(() => prometheusRuleGroups(RUNBOOK_THRESHOLDS, { dataMount: '/da"ta' })).toThrow(/dataMount/);
  });
});

describe('thresholds doc', () => {
  it('lists every alarm kind with its Prometheus expression and the recovered levels', () => {
    const doc = renderThresholdsDoc(RUNBOOK_THRESHOLDS, { dataMount: '/data' });
    for (const r of diskAlarmRules(RUNBOOK_THRESHOLDS)) {
      expect(doc).toContain(`| \`${r.kind}\` | \`${r.prometheusName}\` |`);
    }
    expect(doc).toContain(`| \`fills-soon\` | \`${FILLS_SOON_ALERT}\` |`);
    expect(doc).toContain('| Disk usage | used < 80% |');
    expect(doc).toContain('| Inodes available | free inodes > 10% |');
  });
});

describe('PrometheusRuleGroupsNamespace', () => {
  const yaml = readFileSync(RULES_FILE, 'utf8');

  it('creates a namespace in the workspace of the stack account and region with the rules as data', () => {
    const stack = new Stack(new App(), 'Test');
    new PrometheusRuleGroupsNamespace(stack, 'Rules', { workspaceId: WORKSPACE_ID, rulesYaml: yaml });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::APS::RuleGroupsNamespace', 1);
    template.hasResourceProperties('AWS::APS::RuleGroupsNamespace', {
      Name: 'stemedb-disk',
      Data: yaml,
      Workspace: stackArn('aps', `:workspace/${WORKSPACE_ID}`),
    });
  });

  it('uses the given namespace name', () => {
    const stack = new Stack(new App(), 'Test');
    new PrometheusRuleGroupsNamespace(stack, 'Rules', {
      workspaceId: WORKSPACE_ID,
      rulesYaml: yaml,
      name: 'disk.v2',
    });
    Template.fromStack(stack).hasResourceProperties('AWS::APS::RuleGroupsNamespace', { Name: 'disk.v2' });
  });

  it('refuses an invalid workspace ID and names the prop', () => {
    const stack = new Stack(new App(), 'Test');
    expect(
      () =>
        new PrometheusRuleGroupsNamespace(stack, 'Rules', { workspaceId: 'ws-NOT-A-UUID', rulesYaml: yaml }),
    ).toThrow(/workspaceId is "ws-NOT-A-UUID"; expected .*ws-12345678-abcd-ef01-2345-6789abcdef01/);
  });

  it('refuses a namespace name AMP would reject and names the prop', () => {
    const stack = new Stack(new App(), 'Test');
    expect(
      () =>
        new PrometheusRuleGroupsNamespace(stack, 'Rules', {
          workspaceId: WORKSPACE_ID,
          rulesYaml: yaml,
          name: '-x',
        }),
    ).toThrow(/name is "-x"/);
  });
});
