/**
 * Synthesis at fleet scale: for generated fleets of 1, 50, 200 and 500 nodes
 * (test/support/fleet-synth.ts: up to 20 nodes in the shared stack, else hashed into
 * ceil(n / 15) node stacks), the synth time, the stacks, the resources per stack and the largest
 * template. Synthesized in-process as `cdk synth` does (cdk.json's flags, cdk-nag), Lambda
 * bundling skipped (a constant few seconds that does not grow with the fleet).
 *
 *   npm run bench -- fleet              (or: npx tsx bench/fleet.ts [sizes...], default 1 50 200 500)
 *
 * Targets: 500 nodes in ≤ 60 s, every stack ≤ 450 resources and ≤ 800 KB. Prints one JSON object
 * per fleet and a summary line; exits non-zero when a stack misses its limits (time is reported,
 * not enforced: this machine's load varies).
 */
import { generatedFleetConfig, synthFleet } from '../test/support/fleet-synth';

const MAX_RESOURCES = 450;
const MAX_TEMPLATE_BYTES = 800 * 1024;
const TARGET_SECONDS_AT_500 = 60;

function main(): void {
  const sizes = process.argv.slice(2).map(Number);
  const fleets = sizes.length > 0 ? sizes : [1, 50, 200, 500];
  let overLimit = false;
  for (const count of fleets) {
    if (!Number.isInteger(count) || count < 0) throw new Error(`fleet size ${count} is not a whole number`);
    const r = synthFleet(generatedFleetConfig(count));
    try {
      const largest = r.figures.reduce((a, b) => (b.templateBytes > a.templateBytes ? b : a));
      const most = r.figures.reduce((a, b) => (b.resources > a.resources ? b : a));
      const misses = r.figures.filter(
        (f) => f.resources > MAX_RESOURCES || f.templateBytes > MAX_TEMPLATE_BYTES,
      );
      overLimit ||= misses.length > 0;
      console.log(
        JSON.stringify({
          nodes: count,
          shards: r.config.fleet.shards,
          synthSeconds: Number((r.synthMs / 1000).toFixed(1)),
          stacks: r.figures.length,
          largestTemplate: { stack: largest.stackName, kb: Math.round(largest.templateBytes / 1024) },
          mostResources: { stack: most.stackName, resources: most.resources },
          perStack: r.figures.map((f) => ({
            stack: f.stackName,
            resources: f.resources,
            kb: Math.round(f.templateBytes / 1024),
          })),
          overLimit: misses.map((f) => f.stackName),
          ...(count === 500 ? { withinTimeTarget: r.synthMs / 1000 <= TARGET_SECONDS_AT_500 } : {}),
        }),
      );
    } finally {
      r.cleanup();
    }
  }
  console.log(
    `targets: every stack ≤ ${MAX_RESOURCES} resources and ≤ ${MAX_TEMPLATE_BYTES / 1024} KB: ${overLimit ? 'MISSED' : 'met'}`,
  );
  if (overLimit) process.exit(1);
}

main();
