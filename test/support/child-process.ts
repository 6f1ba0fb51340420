import type { ChildProcess } from 'node:child_process';

/** Collecting what the child processes the tests start print (the drill's Lambda runtime, the fake systemd's tools). */

/** What a child process printed so far, stdout and stderr apart (read them after `close`). */
export interface CollectedOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/** Collects `child`'s stdout and stderr (both must be pipes) as text from now on. */
export function collectOutput(child: ChildProcess): CollectedOutput {
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (d: Buffer) => {
    out.stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out.stderr += d.toString();
  });
  return out;
}
