import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { resolveConfig, type StemeDbConfig } from '../../lib/config';
import { addDiskStacks, type DiskStacks } from '../../lib/disk-stacks';
import { MAX_NODES_IN_SHARED_STACK } from '../../lib/fleet-shards';

/** cdk.json's context (the feature flags), as `cdk synth` gives it to the app. */
export const CDK_JSON_CONTEXT = (
  JSON.parse(readFileSync(join(__dirname, '..', '..', 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  }
).context;

/**
 * What every synthesized stack of a fleet must stay within, with margin below CloudFormation's
 * limits (500 resources, 1 MB template): test/fleet.test.ts asserts it for 200 nodes,
 * `npm run bench -- fleet` for up to 500.
 */
export const MAX_RESOURCES = 450;
/** See `MAX_RESOURCES`. */
export const MAX_TEMPLATE_BYTES = 800 * 1024;

/** `db-<i>` with instance `i-<i in hex, 17 digits>`; every fifth node adopts an existing volume. */
export function generatedNode(i: number): Record<string, unknown> {
  const hex = i.toString(16).padStart(17, '0');
  return {
    name: `db-${i}`,
    instanceId: `i-${hex}`,
    availabilityZone: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'][i % 3],
    ...(i % 5 === 0 ? { existingVolumeId: `vol-${hex}` } : { dataVolume: { sizeGiB: 100 } }),
  };
}

/**
 * A generated fleet of `count` nodes: every node in the shared stack up to its capacity
 * ({@link MAX_NODES_IN_SHARED_STACK}), else hashed into `ceil(count / 15)` node stacks (15 per
 * shard on average, so no shard nears its 30).
 */
export function generatedFleetConfig(count: number, shards?: number): Record<string, unknown> {
  return {
    notifyEmails: ['oncall@example.com'],
    fleet: { shards: shards ?? (count <= MAX_NODES_IN_SHARED_STACK ? 0 : Math.ceil(count / 15)) },
    nodes: Array.from({ length: count }, (_, i) => generatedNode(i + 1)),
  };
}

export interface StackFigures {
  readonly stackName: string;
  /** Every resource of the template, CDKMetadata among them (CloudFormation counts it). */
  readonly resources: number;
  readonly templateBytes: number;
  readonly template: Record<string, unknown>;
  readonly templateFile: string;
}

export interface FleetSynthOptions {
  /**
   * aws-cdk-lib's built-in CloudFormation validation (advisory: it only warns), which bin/app.ts
   * turns off (cfn-lint is the gate): about 8 s of CPU to start its engine and 1.5 s per MB of
   * template. @default false, as bin/app.ts
   */
  readonly builtinValidation?: boolean;
}

export interface FleetSynthResult {
  readonly config: StemeDbConfig;
  readonly stacks: DiskStacks;
  readonly outdir: string;
  readonly figures: readonly StackFigures[];
  readonly synthMs: number;
  /** CPU time of the synth (this process, user + system): what the machine's load does not change. */
  readonly synthCpuMs: number;
  /** Removes the output directory. */
  readonly cleanup: () => void;
}

/**
 * Synthesizes every stack of the deployment in-process as `cdk synth` does (cdk.json's feature
 * flags, cdk-nag: an unacknowledged finding makes `app.synth()` throw), Lambda bundling skipped
 * (`aws:cdk:bundling-stacks: []`: only asset hashes differ), and reads back each written template.
 */
export function synthFleet(raw: Record<string, unknown>, options: FleetSynthOptions = {}): FleetSynthResult {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const config = resolveConfig(raw);
  const outdir = mkdtempSync(join(tmpdir(), 'stemedb-fleet-'));
  const app = new App({
    outdir,
    // As the CLI synthesizes (its default version reporting): each stack has its CDKMetadata
    // resource, which counts toward CloudFormation's limits and tells cfn-lint a template is CDK's.
    analyticsReporting: true,
    builtinCloudFormationValidation: options.builtinValidation ?? false,
    context: { ...CDK_JSON_CONTEXT, stemedb: undefined, 'aws:cdk:bundling-stacks': [] },
  });
  const stacks = addDiskStacks(app, config);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  app.synth();
  const synthMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStarted);
  const synthCpuMs = (cpu.user + cpu.system) / 1000;
  const figures = readdirSync(outdir)
    .filter((f) => f.endsWith('.template.json'))
    .sort()
    .map((f) => {
      const file = join(outdir, f);
      const template = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      return {
        stackName: f.replace(/\.template\.json$/, ''),
        resources: Object.keys((template.Resources as object | undefined) ?? {}).length,
        templateBytes: statSync(file).size,
        template,
        templateFile: file,
      };
    });
  return {
    config,
    stacks,
    outdir,
    figures,
    synthMs,
    synthCpuMs,
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}
