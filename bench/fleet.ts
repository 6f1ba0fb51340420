/**
 * Synthesis at fleet scale: for generated fleets of 1, 50, 200 and 500 nodes
 * (test/support/fleet-synth.ts: up to 18 nodes in the shared stack, else hashed into
 * ceil(n / 15) node stacks; every fifth node adopts its volume), the synth time, the stacks, the
 * resources per stack and the largest template. Each fleet is synthesized in a process of its own,
 * from the start as `cdk synth` runs bin/app.ts (cdk.json's flags, cdk-nag, CDKMetadata; CDK's
 * built-in CloudFormation validation off, as the app has it), Lambda bundling skipped (a constant few seconds
 * that does not grow with the fleet). Reports the process's wall time and CPU time (user + system,
 * module loading included): this machine's 2 cores are shared, so wall time varies with the load
 * and CPU time does not.
 *
 *   npm run bench -- fleet              (or: npx tsx bench/fleet.ts [sizes...], default 1 50 200 500)
 *
 * Targets: 500 nodes in ≤ 60 s, every stack ≤ 450 resources and ≤ 800 KB. Prints one JSON object
 * per fleet and a Markdown table; exits non-zero when a stack misses its limits (time is reported,
 * not enforced: this machine's load varies).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  generatedFleetConfig,
  MAX_RESOURCES,
  MAX_TEMPLATE_BYTES,
  synthFleet,
} from '../test/support/fleet-synth';

const TARGET_SECONDS_AT_500 = 60;
const ONE = '--one';

interface FleetFigures {
  readonly nodes: number;
  readonly shards: number;
  readonly processSeconds: number;
  readonly processCpuSeconds: number;
  readonly synthCpuSeconds: number;
  readonly stacks: number;
  readonly largestTemplate: { readonly stack: string; readonly kb: number };
  readonly largestNodeStackKb: number | null;
  readonly mostResources: { readonly stack: string; readonly resources: number };
  readonly perStack: ReadonlyArray<{
    readonly stack: string;
    readonly resources: number;
    readonly kb: number;
  }>;
  readonly overLimit: readonly string[];
}

/** In the child: synthesizes one fleet and prints its figures as one JSON line. */
function measureOne(count: number): void {
  const r = synthFleet(generatedFleetConfig(count));
  try {
    const largest = r.figures.reduce((a, b) => (b.templateBytes > a.templateBytes ? b : a));
    const most = r.figures.reduce((a, b) => (b.resources > a.resources ? b : a));
    const nodeStacks = r.figures.filter((f) => f.stackName !== 'StemeDB-Disk');
    const cpu = process.cpuUsage();
    const figures: FleetFigures = {
      nodes: count,
      shards: r.config.fleet.shards,
      processSeconds: Number((performance.now() / 1000).toFixed(1)),
      processCpuSeconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(1)),
      synthCpuSeconds: Number((r.synthCpuMs / 1000).toFixed(1)),
      stacks: r.figures.length,
      largestTemplate: { stack: largest.stackName, kb: Math.round(largest.templateBytes / 1024) },
      largestNodeStackKb:
        nodeStacks.length === 0
          ? null
          : Math.round(Math.max(...nodeStacks.map((f) => f.templateBytes)) / 1024),
      mostResources: { stack: most.stackName, resources: most.resources },
      perStack: r.figures.map((f) => ({
        stack: f.stackName,
        resources: f.resources,
        kb: Math.round(f.templateBytes / 1024),
      })),
      overLimit: r.figures
        .filter((f) => f.resources > MAX_RESOURCES || f.templateBytes > MAX_TEMPLATE_BYTES)
        .map((f) => f.stackName),
    };
    console.log(JSON.stringify(figures));
  } finally {
    r.cleanup();
  }
}

function main(): void {
  const args = process.argv.slice(2);
  if (args[0] === ONE) {
    measureOne(Number(args[1]));
    return;
  }
  const sizes = args.map(Number);
  const fleets = sizes.length > 0 ? sizes : [1, 50, 200, 500];
  const bad = fleets.filter((n) => !Number.isInteger(n) || n < 0);
  if (bad.length > 0) throw new Error(`fleet sizes must be whole numbers, got ${bad.join(', ')}`);
  const tsx = join(__dirname, '..', 'node_modules', '.bin', 'tsx');
  const rows: string[] = [];
  let overLimit = false;
  for (const count of fleets) {
    const started = performance.now();
    const child = spawnSync(tsx, [__filename, ONE, String(count)], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const wall = (performance.now() - started) / 1000;
    if (child.status !== 0) {
      process.stderr.write(child.stderr);
      throw new Error(`the ${count}-node synth failed (exit ${child.status ?? child.signal})`);
    }
    const line = child.stdout.trim().split('\n').at(-1) ?? '';
    const f = JSON.parse(line) as FleetFigures;
    overLimit ||= f.overLimit.length > 0;
    console.log(
      JSON.stringify({
        ...f,
        wallSeconds: Number(wall.toFixed(1)),
        ...(count === 500
          ? {
              withinTimeTarget: wall <= TARGET_SECONDS_AT_500,
              withinTimeTargetByCpu: f.processCpuSeconds <= TARGET_SECONDS_AT_500,
            }
          : {}),
      }),
    );
    rows.push(
      `| ${count} | ${f.shards} | ${f.stacks} | ${f.mostResources.resources} (${f.mostResources.stack}) | ${f.largestTemplate.kb} KB (${f.largestTemplate.stack}) | ${f.largestNodeStackKb === null ? '–' : `${f.largestNodeStackKb} KB`} | ${wall.toFixed(1)} s | ${f.processCpuSeconds.toFixed(1)} s |`,
    );
  }
  console.log(
    [
      '| nodes | fleet.shards | stacks | most resources in a stack | largest template | largest node stack | wall | CPU |',
      '|---|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n'),
  );
  console.log(
    `targets: every stack ≤ ${MAX_RESOURCES} resources and ≤ ${MAX_TEMPLATE_BYTES / 1024} KB: ${overLimit ? 'MISSED' : 'met'}`,
  );
  if (overLimit) process.exit(1);
}

main();
