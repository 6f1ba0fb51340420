/**
 * `npm run drill [-- <scenario>...]`: heals full disks end to end on this machine, with the
 * synthesized stack deployed into moto_server (see ./drill.ts). Needs root and loop devices.
 *
 *   npm run drill                 every scenario
 *   npm run drill -- critical     one (names: see --list)
 *   npm run drill -- --list
 *
 * Prints each scenario's timeline and writes every timeline as JSON to drill-report.json (or
 * DRILL_REPORT). Exit status: 0 when every check of every scenario held, 1 otherwise, 2 for bad
 * arguments or a missing prerequisite.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { preferPyenvInterpreter } from '../support/python-path';
import { Drill, type DrillTimeline } from './drill';
import { failedChecks, formatTimeline } from './report';
import { SCENARIOS, scenarioNamed } from './scenarios';

preferPyenvInterpreter();

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--list')) {
    for (const s of SCENARIOS) console.log(`${s.name.padEnd(10)} ${s.summary}`);
    return 0;
  }
  const unknown = args.filter((a) => scenarioNamed(a) === undefined);
  if (unknown.length > 0) {
    console.error(
      `drill: unknown scenario ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
    return 2;
  }
  const missing = Drill.missingPrerequisite();
  if (missing !== undefined) {
    console.error(`drill: ${missing}`);
    return 2;
  }
  const selected = args.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => args.includes(s.name));
  const drill = await Drill.start({ nodes: selected.map((s) => s.node) });
  const timelines: DrillTimeline[] = [];
  const failures: string[] = [];
  try {
    for (const scenario of selected) {
      try {
        const t = await scenario.run(drill);
        timelines.push(t);
        console.log(`\n${formatTimeline(t)}\n`);
        failures.push(...failedChecks(t));
      } catch (err) {
        failures.push(`${scenario.name}: ${(err as Error).stack ?? String(err)}`);
        console.error(`drill: ${scenario.name} failed: ${(err as Error).message}`);
      }
    }
  } finally {
    await drill.stop();
  }
  const reportFile = resolve(process.env.DRILL_REPORT ?? 'drill-report.json');
  writeFileSync(
    reportFile,
    `${JSON.stringify({ generatedAt: new Date().toISOString(), timelines }, null, 2)}\n`,
  );
  console.log(`drill: report written to ${reportFile}`);
  for (const t of timelines)
    console.log(
      `drill: ${t.scenario.padEnd(10)} total ${(t.totalMs / 1000).toFixed(1)} s, own ${(t.ownMs / 1000).toFixed(1)} s`,
    );
  if (failures.length > 0) {
    console.error(`drill: ${failures.length} check(s) failed:\n  ${failures.join('\n  ')}`);
    return 1;
  }
  console.log('drill: every check held');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`drill: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
