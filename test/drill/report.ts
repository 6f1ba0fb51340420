import type { DrillTimeline } from './drill';

/** The drill's report: every scenario's timeline, as the operator would read it the next morning. */

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const pct = (x: number | undefined): string => (x === undefined ? '?' : `${x}%`);
const gib = (b: number | undefined): string => (b === undefined ? '?' : `${(b / 1024 ** 3).toFixed(2)} GiB`);

/** A plain-text timeline of one scenario. */
export function formatTimeline(t: DrillTimeline): string {
  const lines: string[] = [];
  lines.push(`== ${t.scenario} (node ${t.node}) ==`);
  if (t.before !== undefined && t.after !== undefined) {
    lines.push(
      `disk before: ${pct(t.before.usedPercent)} used, ${gib(t.before.availBytes)} free of ${gib(t.before.sizeBytes)}, ${t.before.inodesFree} inodes free`,
    );
    lines.push(
      `disk after:  ${pct(t.after.usedPercent)} used, ${gib(t.after.availBytes)} free of ${gib(t.after.sizeBytes)}, ${t.after.inodesFree} inodes free`,
    );
  }
  lines.push('events:');
  for (const e of t.events) lines.push(`  +${seconds(e.atMs).padStart(9)}  ${e.what}`);
  lines.push('steps (start, duration, status, principal, document.step):');
  for (const s of t.steps) {
    lines.push(
      `  +${seconds(s.startMs).padStart(9)} ${seconds(s.durationMs).padStart(9)}  ${s.status.padEnd(8)} ${s.principal.padEnd(40)} ${s.document}.${s.step}${s.message ? `  — ${s.message.slice(0, 160)}` : ''}`,
    );
  }
  lines.push(`notifications: ${t.notifications.length}`);
  for (const n of t.notifications) lines.push(`  - ${n.subject}`);
  lines.push(`denied calls: ${t.denied.length}`);
  for (const d of t.denied) lines.push(`  - ${d.message}`);
  const figures = Object.entries(t.figures ?? {});
  if (figures.length > 0) {
    lines.push('figures:');
    for (const [name, value] of figures) lines.push(`  ${name}: ${value}`);
  }
  lines.push('checks:');
  for (const c of t.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
  lines.push(
    `total ${seconds(t.totalMs)} from the alarm event to the end of validation; scaled sleeps ${seconds(t.sleptMs)}; our own time ${seconds(t.ownMs)}`,
  );
  return lines.join('\n');
}

/**
 * The checks that did not hold; when any did not, also every step that failed on the way, with
 * its principal and error, and every denied call (what the reader needs to find the cause).
 */
export function failedChecks(t: DrillTimeline): string[] {
  const failed = t.checks.filter((c) => !c.ok).map((c) => `${t.scenario}: ${c.name}: ${c.detail}`);
  if (failed.length === 0) return [];
  const steps = t.steps
    .filter((s) => s.status !== 'Success')
    .map(
      (s) =>
        `${t.scenario}:   step ${s.document}.${s.step} (${s.action}) as ${s.principal}: ${s.status}: ${s.message ?? ''}`,
    );
  const denied = t.denied.map((d) => `${t.scenario}:   denied: ${d.message}`);
  return [...failed, ...steps, ...denied];
}
