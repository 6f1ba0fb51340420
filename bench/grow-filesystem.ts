/**
 * The filesystem growth of §5A on a 100% full disk: the synthesized `<Prefix>-Host-ExpandVolume` document,
 * run as the SSM agent would, on a 1 GiB loop device (GPT, one partition, xfs filled to 100%)
 * that has just "grown" to 2 GiB (`losetup -c`, as EBS does). Reports the script's wall time
 * per run and the median. Needs root (loop devices).
 *
 *   npx tsx bench/grow-filesystem.ts [runs]      (default 5)
 */
import { runCommandDocument, synthesizeCommandDocument } from '../test/support/command-document-runner';
import { LoopDeviceLab } from '../test/support/loop-device';

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? '5');
  if (!Number.isInteger(runs) || runs < 1 || runs > 50)
    throw new Error(`runs is ${process.argv[2]}; expected 1 to 50`);
  const content = synthesizeCommandDocument('ExpandVolume');
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const lab = new LoopDeviceLab('bench-grow-');
    try {
      const disk = lab.createDisk({ sizeMiB: 1024, table: 'gpt', fs: 'xfs' });
      const mountPoint = disk.mountPoint ?? '';
      const fill = lab.fill(mountPoint);
      lab.growDisk(disk, 2048);
      const started = performance.now();
      const r = await runCommandDocument(content, { MountPoint: mountPoint }, { timeoutMs: 120_000 });
      const ms = performance.now() - started;
      if (r.exitCode !== 0)
        throw new Error(`Host-ExpandVolume exited ${r.exitCode}: ${r.stderr.trim().split('\n').pop()}`);
      const result = r.lastJson as { sizeBeforeBytes?: number; sizeAfterBytes?: number } | undefined;
      times.push(ms);
      console.log(
        `run ${i + 1}: ${ms.toFixed(0)} ms, filled to ${fill.usedPercent}% used, filesystem ${result?.sizeBeforeBytes} → ${result?.sizeAfterBytes} bytes`,
      );
    } finally {
      lab.cleanup();
    }
  }
  console.log(
    `Host-ExpandVolume on a 100% full 1 GiB xfs-in-GPT loop device grown to 2 GiB: median ${median(times).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms over ${runs} runs`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
