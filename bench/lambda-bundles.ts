/**
 * Bundle size and cold import time of the volume Lambdas, built as the stack builds them:
 * esbuild, ESM, minified, tree-shaken, `mainFields: ['module', 'main']`, SDK bundled.
 *
 *   npx tsx bench/lambda-bundles.ts [runs]      (runs: cold imports per bundle, default 7)
 *
 * Prints one JSON object: per Lambda the bundle bytes, the median / min / max time of
 * `await import(bundle)` in a fresh `node` process (module init included: the SDK client and
 * Powertools are created at import), and the same with `@aws-sdk/*` external (the runtime's SDK)
 * for comparison. Then it runs the bundled expand-volume handler against moto_server (a real
 * instance and tagged volume) to prove the bundle works as ESM with no `require` banner, and
 * reports its `apiCalls`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeImagesCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { build } from 'esbuild';
import { startMotoServer, TEST_REGION } from '../test/support/moto-server';

const LAMBDAS = ['expand-volume', 'wait-for-volume-modification', 'verify-archive', 'alarm-router'] as const;
const ROOT = resolve(__dirname, '..');

async function bundle(name: string, outfile: string, sdkExternal: boolean): Promise<number> {
  await build({
    entryPoints: [join(ROOT, 'lambda', `${name}.ts`)],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    mainFields: ['module', 'main'],
    outfile,
    logLevel: 'warning',
    external: sdkExternal ? ['@aws-sdk/*'] : [],
  });
  return statSync(outfile).size;
}

/** Milliseconds of `await import(file)` in fresh node processes. */
function coldImports(file: string, runs: number): { medianMs: number; minMs: number; maxMs: number } {
  const script = `const t = performance.now(); await import(${JSON.stringify(file)}); console.log(performance.now() - t);`;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const out = execFileSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
      env: { ...process.env, AWS_REGION: TEST_REGION },
      encoding: 'utf8',
    });
    times.push(Number(out.trim().split('\n').pop()));
  }
  times.sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    medianMs: round(times[Math.floor(times.length / 2)] ?? Number.NaN),
    minMs: round(times[0] ?? Number.NaN),
    maxMs: round(times[times.length - 1] ?? Number.NaN),
  };
}

/** Runs the bundled expand-volume handler in a fresh node process against moto_server. */
async function smokeTest(expandBundle: string): Promise<unknown> {
  const moto = await startMotoServer();
  const ec2 = new EC2Client({
    endpoint: moto.endpoint,
    region: TEST_REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  try {
    const images = await ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }));
    const run = await ec2.send(
      new RunInstancesCommand({ ImageId: images.Images?.[0]?.ImageId, MinCount: 1, MaxCount: 1 }),
    );
    const instance = run.Instances?.[0];
    const vol = await ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: instance?.Placement?.AvailabilityZone,
        Size: 100,
        VolumeType: 'gp3',
        TagSpecifications: [
          {
            ResourceType: 'volume',
            Tags: [
              { Key: 'stemedb:managed', Value: 'true' },
              { Key: 'stemedb:node', Value: 'bench' },
            ],
          },
        ],
      }),
    );
    await ec2.send(
      new AttachVolumeCommand({
        InstanceId: instance?.InstanceId,
        VolumeId: vol.VolumeId,
        Device: '/dev/sdf',
      }),
    );
    const payload = JSON.stringify({ instanceId: instance?.InstanceId, reason: 'bench' });
    const script = `const { handler } = await import(${JSON.stringify(expandBundle)}); console.log(JSON.stringify(await handler(${payload})));`;
    const out = execFileSync(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
      env: { ...moto.env, POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true' },
      encoding: 'utf8',
    });
    return JSON.parse(out.trim().split('\n').pop() ?? '{}');
  } finally {
    ec2.destroy();
    await moto.stop();
  }
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 7);
  const dir = mkdtempSync(join(tmpdir(), 'lambda-bundles-'));
  // The SDK-external variant resolves @aws-sdk/* through this link, as the runtime's SDK would be.
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  try {
    const results: Record<string, unknown> = {};
    for (const name of LAMBDAS) {
      const file = join(dir, `${name}.mjs`);
      const external = join(dir, `${name}.sdk-external.mjs`);
      const bytes = await bundle(name, file, false);
      const externalBytes = await bundle(name, external, true);
      results[name] = {
        bytes,
        coldImport: coldImports(file, runs),
        sdkExternal: { bytes: externalBytes, coldImport: coldImports(external, runs) },
      };
    }
    const smoke = await smokeTest(join(dir, 'expand-volume.mjs'));
    console.log(
      JSON.stringify({ node: process.version, runs, results, bundledHandlerAgainstMoto: smoke }, null, 2),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
