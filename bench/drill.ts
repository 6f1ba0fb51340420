/**
 * Time from the alarm event to validated recovery, end to end: the drill's critical scenario (a
 * 99% full 1 GiB xfs data volume; alarm event → bundled alarm-router → ExpandVolume → snapshot,
 * ModifyVolume, wait, growpart/xfs_growfs on the loop device → ValidateDiskHealth) on three nodes
 * of one drill set-up, one after the other. Needs root and loop devices, like `npm run drill`.
 *
 *   npm run bench -- drill          (or: npx tsx bench/drill.ts [runs], default 3)
 *
 * "Own time" is the total minus scaled sleeps (the critical path has none) and excludes the alarm's
 * evaluation window (CloudWatch's 5 minutes of datapoints, which no code of ours can shorten): the
 * drill sets the alarm state and sends the event itself. Prints one JSON object: every run's total
 * and own time, the median, and where the time of the median run went (per step, largest first).
 * Goal: own time ≤ 60 s.
 */
import { Drill, type DrillTimeline } from '../test/drill/drill';
import { failedChecks } from '../test/drill/report';
import { criticalScenario } from '../test/drill/scenarios';

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const missing = Drill.missingPrerequisite();
  if (missing !== undefined) throw new Error(missing);
  const scenarios = Array.from({ length: runs }, (_, i) => criticalScenario(`bench-critical-${i + 1}`));
  const started = performance.now();
  const drill = await Drill.start({ nodes: scenarios.map((s) => s.node), log: () => undefined });
  const setupMs = Math.round(performance.now() - started);
  const timelines: DrillTimeline[] = [];
  try {
    for (const s of scenarios) {
      const t = await s.run(drill);
      const failed = failedChecks(t);
      if (failed.length > 0) throw new Error(`the drill failed: ${failed.join('; ')}`);
      timelines.push(t);
    }
  } finally {
    await drill.stop();
  }
  const byOwn = [...timelines].sort((a, b) => a.ownMs - b.ownMs);
  const median = byOwn[Math.floor(byOwn.length / 2)] as DrillTimeline;
  const perStep = new Map<string, number>();
  for (const s of median.steps)
    perStep.set(`${s.document}.${s.step}`, (perStep.get(`${s.document}.${s.step}`) ?? 0) + s.durationMs);
  console.log(
    JSON.stringify(
      {
        scenario: 'critical: 99% full 1 GiB xfs → ExpandVolume → ValidateDiskHealth',
        command: 'npm run bench -- drill',
        setupMs,
        runs: timelines.map((t) => ({ totalMs: t.totalMs, ownMs: t.ownMs, sleptMs: t.sleptMs })),
        medianOwnMs: median.ownMs,
        goalMs: 60_000,
        medianSteps: [...perStep.entries()].sort((a, b) => b[1] - a[1]).map(([step, ms]) => ({ step, ms })),
      },
      null,
      2,
    ),
  );
}

main().catch((err: unknown) => {
  console.error((err as Error).stack ?? String(err));
  process.exit(1);
});
