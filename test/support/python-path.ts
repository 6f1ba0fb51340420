import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';

/**
 * Puts the directory of the `python3` that pyenv's shims would run first on `PATH`, so that every
 * `python3`, `aws`, `moto_server` and `cfn-lint` the tests and the host scripts start is the
 * interpreter itself and not the shim: the shim is a bash script that runs `pyenv` to pick a version,
 * about 100 ms per process, and the suite starts thousands (each `aws` call of a host script, each
 * embedded Automation script run). The programs are the same ones the shims select; a machine
 * without pyenv is left as it is. Returns the directory put first, if any.
 */
export function preferPyenvInterpreter(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const which = spawnSync('pyenv', ['which', 'python3'], { encoding: 'utf8', env });
  if (which.error !== undefined || which.status !== 0) return undefined;
  const bin = dirname(which.stdout.trim());
  const path = env.PATH ?? '';
  if (path.split(':')[0] !== bin) env.PATH = `${bin}:${path}`;
  return bin;
}
