import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TWO_NODES_FILE } from './support/synth';

const ROOT = join(__dirname, '..');

/** The environment of a machine with no AWS account: no credentials, no profile, no region. */
function noAwsEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('AWS_') && !k.startsWith('CDK_')) env[k] = v;
  return {
    ...env,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

function cdkSynth(outdir: string, extra: string[]) {
  return spawnSync('npx', ['cdk', 'synth', '--quiet', '--no-notices', '-o', outdir, ...extra], {
    cwd: ROOT,
    env: noAwsEnv(),
    encoding: 'utf8',
    timeout: 180_000,
  });
}

describe('cdk synth of a two-node configuration file, as the README runs it', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'stemedb-cdkout-'));
  let synth: ReturnType<typeof cdkSynth>;
  beforeAll(() => {
    synth = cdkSynth(outdir, ['-c', `stemedbConfig=${TWO_NODES_FILE}`]);
  });
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it('succeeds with no AWS credentials, no Docker and zero unacknowledged cdk-nag findings', () => {
    expect(synth.stderr).not.toMatch(/AwsSolutions-/);
    expect(synth.status, synth.stderr).toBe(0);
  });

  it('writes a template with 2 volumes (one created, one adopted) and at least 12 alarms', () => {
    const template = JSON.parse(readFileSync(join(outdir, 'StemeDB-Disk.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string }>;
    };
    const types = Object.values(template.Resources).map((r) => r.Type);
    expect(types.filter((t) => t === 'AWS::EC2::Volume')).toHaveLength(1);
    expect(types.filter((t) => t === 'Custom::AWS')).toHaveLength(1);
    expect(types.filter((t) => t === 'AWS::CloudWatch::Alarm').length).toBeGreaterThanOrEqual(12);
    // The shared stack's node detail (`StemeDB-disk`) and the fleet overview (`StemeDB-disk-fleet`).
    expect(types.filter((t) => t === 'AWS::CloudWatch::Dashboard')).toHaveLength(2);
  });

  it('bundles every Lambda as an ESM module that loads and exports its handler', () => {
    const bundles = readdirSync(outdir)
      .filter((d) => d.startsWith('asset.'))
      .map((d) => join(outdir, d, 'index.mjs'))
      .filter((f) => existsSync(f));
    expect(bundles).toHaveLength(4);
    for (const bundle of bundles) {
      const probe = spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const m = await import(${JSON.stringify(bundle)}); console.log(typeof m.handler);`,
        ],
        {
          encoding: 'utf8',
          // Module init reads its configuration; give it what the stack gives it.
          env: {
            ...noAwsEnv(),
            AWS_REGION: 'eu-west-1',
            PREFIX: 'StemeDB',
            AUTOMATION_ROLE_ARN: 'arn:aws:iam::123456789012:role/StemeDB-disk-automation',
            TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:StemeDB-disk-notifications',
          },
        },
      );
      expect(probe.stdout.trim(), `${bundle}: ${probe.stderr}`).toBe('function');
    }
  });

  it('passes cfn-lint with zero errors and zero warnings', () => {
    const templates = readdirSync(outdir)
      .filter((f) => f.endsWith('.template.json'))
      .map((f) => join(outdir, f));
    expect(templates.length).toBeGreaterThan(0);
    const lint = spawnSync('cfn-lint', ['--format', 'parseable', ...templates], { encoding: 'utf8' });
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
  });
});

describe('cdk synth with no configuration at all', () => {
  const outdir = mkdtempSync(join(tmpdir(), 'stemedb-cdkout-'));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it('succeeds and warns how to add nodes', () => {
    const r = cdkSynth(outdir, []);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/No StemeDB nodes are configured/);
  });
});

describe('cdk synth with an invalid configuration', () => {
  it('fails before building anything and names the bad key', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'stemedb-cdkout-'));
    try {
      const r = cdkSynth(outdir, [
        '-c',
        'stemedb={"nodes":[{"name":"db-1","instanceId":"i-bad","availabilityZone":"eu-west-1a","dataVolume":{"sizeGiB":10}}]}',
      ]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/nodes\[0\]\.instanceId is "i-bad"; expected an EC2 instance ID/);
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describe('cdk-nag runs on every synth', () => {
  it('fails a synth that has an unacknowledged finding', () => {
    const app = new App({ outdir: mkdtempSync(join(tmpdir(), 'stemedb-nag-')) });
    const stack = new Stack(app, 'Probe');
    new sns.Topic(stack, 'PlainTopic');
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/SNS Topic does not require publishers to use SSL/);
  });
});
