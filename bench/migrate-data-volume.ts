/**
 * MigrateDataVolume (runbook §5B): the synthesized `<Prefix>-Host-MigrateDataVolume` document,
 * run as the SSM agent would, moving a data mount between loop devices with the StemeDB
 * stand-in as the service (fake systemctl). Two data sets: 1 GiB in 16 files of 64 MiB, and
 * 100,000 small files (1-4 KiB, 100 directories). For each, with PreSyncPasses 1 (the default:
 * copy while the service runs, then only the changes while it is stopped) and 0 (the whole copy
 * while stopped), it reports the downtime (service stopped → started and healthy) and where it
 * goes, and the verification's cost (a manifest of both trees, then rsync --checksum of every
 * file). The old filesystem is unmounted and mounted again before each run, so its pages are not
 * in its cache; the loop devices' image files still sit in the host page cache, so disk I/O here
 * is faster than EBS's (gp3 baseline: 125 MiB/s). Needs root.
 *
 *   npx tsx bench/migrate-data-volume.ts [1g|100k ...]     (default: both)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommandDocument } from '../test/support/command-document-runner';
import { createFakeSystemd } from '../test/support/fake-systemd';
import { isMounted, LoopDeviceLab, sh } from '../test/support/loop-device';
import { synthesizeMigrateDataVolume } from '../test/support/migrate-data-volume-document';
import { freePort, standinCommand } from '../test/support/stemedb-standin';

const UNIT = 'stemedb-api';
const MiB = 1024 * 1024;

interface Result {
  status: string;
  reason: string | null;
  verify: { files: number; bytes: number; seconds: number; manifestSeconds: number; checksumSeconds: number };
  timings: Record<string, number | null>;
}

function oneGiB(dir: string): void {
  mkdirSync(join(dir, 'db'), { recursive: true });
  for (let i = 0; i < 16; i++)
    sh('dd', [
      'if=/dev/urandom',
      `of=${join(dir, 'db', `part-${i}.kv`)}`,
      'bs=1M',
      'count=64',
      'status=none',
    ]);
}

function smallFiles(dir: string): void {
  let n = 0;
  for (let d = 0; d < 100; d++) {
    const sub = join(dir, 'wal', `dir-${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 1000; f++) {
      writeFileSync(join(sub, `segment-${f}.log`), Buffer.alloc(1024 * (1 + (n % 4)), n % 251));
      n++;
    }
  }
}

async function scenario(
  name: string,
  oldMiB: number,
  newMiB: number,
  fill: (dir: string) => void,
): Promise<void> {
  const lab = new LoopDeviceLab('bench-migrate-');
  const systemd = { cleanup: async () => undefined } as { cleanup: () => Promise<void> };
  try {
    const root = lab.root;
    const mount = join(root, 'data');
    const etc = join(root, 'etc');
    mkdirSync(etc);
    const fstab = join(etc, 'fstab');
    const doc = synthesizeMigrateDataVolume(fstab);
    const old = lab.createDisk({ sizeMiB: oldMiB, fs: 'xfs', mount: false });
    lab.mount(old, mount);
    const t0 = performance.now();
    fill(mount);
    console.log(`${name}: data written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const uuid = sh('blkid', ['-p', '-o', 'value', '-s', 'UUID', old.fsDevice]).trim();
    const original = `UUID=${uuid} ${mount} xfs defaults 0 0\n`;
    const port = await freePort();
    const fake = createFakeSystemd({ [UNIT]: standinCommand({ port, dataDir: mount }) });
    systemd.cleanup = () => fake.cleanup();
    for (const passes of ['1', '0']) {
      // Back to the old disk for each run, its page cache dropped (unmount, mount).
      await fake.systemctl('stop', UNIT);
      if (isMounted(mount)) sh('umount', [mount]);
      sh('mount', [old.fsDevice, mount]);
      writeFileSync(fstab, original);
      await fake.systemctl('start', UNIT);
      const target = lab.createDisk({ sizeMiB: newMiB, fs: 'none', mount: false });
      const r = await runCommandDocument(
        doc,
        {
          MountPoint: mount,
          Device: target.device,
          StagingDir: join(root, `staging-${passes}`),
          FstabFile: fstab,
          ServiceName: UNIT,
          HealthUrl: `http://127.0.0.1:${port}/v1/health`,
          HealthTimeoutSeconds: '60',
          DeviceWaitSeconds: '0',
          PreSyncPasses: passes,
        },
        { env: fake.env, timeoutMs: 1_800_000 },
      );
      const j = r.lastJson as unknown as Result | undefined;
      if (r.exitCode !== 0 || j?.status !== 'migrated')
        throw new Error(
          `${name}: exit ${r.exitCode}: ${j?.reason ?? r.stderr.split('\n').slice(-5).join('\n')}`,
        );
      const t = j.timings;
      console.log(
        `${name}, PreSyncPasses=${passes}: ${j.verify.files} files, ${(j.verify.bytes / MiB).toFixed(0)} MiB; ` +
          `copy while running ${t.preSyncSeconds} s; DOWNTIME ${t.downtimeSeconds} s = stop ${t.stopSeconds} + final copy ${t.finalSyncSeconds} + verify ${t.verifySeconds} + switch ${t.switchSeconds} + start ${t.startSeconds}; ` +
          `verification ${j.verify.seconds} s (remount, manifest of both trees ${j.verify.manifestSeconds} s, rsync --checksum of every file ${j.verify.checksumSeconds} s); whole run ${(r.durationMs / 1000).toFixed(1)} s`,
      );
    }
  } finally {
    await systemd.cleanup();
    lab.cleanup();
  }
}

async function main(): Promise<void> {
  const pick = process.argv.slice(2);
  if (pick.length === 0 || pick.includes('1g')) await scenario('1 GiB in 16 files', 2048, 3072, oneGiB);
  if (pick.length === 0 || pick.includes('100k'))
    await scenario('100,000 small files', 2048, 2048, smallFiles);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
