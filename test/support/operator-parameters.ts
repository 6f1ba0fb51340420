/**
 * What an operator may pass to an Automation document, checked as StartAutomationExecution checks
 * a String parameter: `allowedPattern` (JavaScript semantics, `$` only at the very end),
 * `allowedValues` and `maxChars`. With the hostile values the suites try against the parameters
 * that reach a root script on the host (paths, units, URLs, mount points, directory lists) and
 * against the free-text `Reason`; `valuesToRefuse` puts them together for one parameter.
 */

/** A parameter declaration as these checks read it. */
export interface OperatorParameter {
  readonly default?: unknown;
  readonly allowedPattern?: string;
  readonly allowedValues?: readonly unknown[];
  readonly maxChars?: number;
}

/** Whether StartAutomationExecution would accept `value` for `spec` (String parameters). */
export function acceptsValue(spec: OperatorParameter | undefined, value: string): boolean {
  if (spec === undefined) return false;
  if (spec.allowedPattern !== undefined && !new RegExp(spec.allowedPattern).test(value)) return false;
  if (spec.allowedValues !== undefined && !spec.allowedValues.includes(value)) return false;
  if (spec.maxChars !== undefined && value.length > spec.maxChars) return false;
  return true;
}

/** Values every path, unit or URL parameter must refuse, whatever the configuration. */
export const HOSTILE_ANYWHERE: readonly string[] = [
  '',
  ' ',
  '/',
  '..',
  '/..',
  '$(touch /tmp/pwned)',
  '`id`',
  '; rm -rf /',
  '|id',
  '&id',
  '\n',
  '{{ InstanceId }}',
  '%s',
  '{0}',
];

/** Paths on the node a root script must never be pointed at through an operator parameter. */
export const HOSTILE_PATHS: readonly string[] = [
  '/etc',
  '/etc/shadow',
  '/etc/sudoers',
  '/etc/passwd',
  '/root/.ssh/authorized_keys',
  '/boot',
  '/proc',
  '/sys',
  '/dev',
  '/dev/shm',
  '/var/log',
  '/var/lib/docker',
  '/home',
  '/tmp',
  '/usr/bin',
  '/etc/systemd/system/stemedb-api.service',
];

/** Systemd units other than the database's. */
export const HOSTILE_UNITS: readonly string[] = [
  'sshd',
  'ssh.service',
  'amazon-ssm-agent',
  'systemd-journald',
  'getty@tty1',
  'cron',
  'auditd',
  '-stemedb-api',
  'stemedb-api;reboot',
];

/** Local URLs other than the configured health endpoint. */
export const HOSTILE_URLS: readonly string[] = [
  'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
  'http://localhost:22/',
  'http://127.0.0.1:2375/containers/json',
  'http://localhost:18180/v1/admin/compact',
  'http://localhost:18180/v1/health/../admin/compact',
  'http://localhost:18180/v1/assert',
  'http://localhost:9100/metrics',
  'https://localhost:18180/v1/health',
  'file:///etc/shadow',
];

/**
 * The configured value with one change each: what "a pattern that only admits it" must refuse too
 * (a character that is a regex metacharacter in the value, a trailing slash, a `/.` segment,
 * another case, a prefix, a suffix).
 */
export function nearMisses(configured: string): string[] {
  const out = new Set<string>([
    `${configured}/`,
    `${configured} `,
    ` ${configured}`,
    `${configured}\n`,
    `${configured}x`,
    `${configured}/..`,
    `${configured}/../etc`,
    configured.slice(0, -1),
    configured.toUpperCase(),
    configured.replace(/\//, '//'),
    configured.replace(/\.(?=[^.]*$)/, 'x'),
    `${configured}.bak`,
    `${configured}:/etc`,
  ]);
  const parent = configured.replace(/\/[^/]*$/, '');
  if (parent !== '') {
    out.add(parent);
    out.add(`${parent}/./${configured.slice(parent.length + 1)}`);
  }
  out.delete(configured);
  return [...out];
}

/** What a parameter names on the host. */
export type HostileKind = 'path' | 'unit' | 'url';

/** The hostile values of each kind. */
export const HOSTILE_OF_KIND: Readonly<Record<HostileKind, readonly string[]>> = {
  path: HOSTILE_PATHS,
  unit: HOSTILE_UNITS,
  url: HOSTILE_URLS,
};

/**
 * `HOSTILE_ANYWHERE`, the hostile values of `kind`, `extra` and the near misses of every value of
 * `allowed`, each once and none of them an allowed value.
 */
export function valuesToRefuse(
  kind: HostileKind,
  allowed: readonly string[],
  extra: readonly string[] = [],
): string[] {
  const values = new Set([
    ...HOSTILE_ANYWHERE,
    ...HOSTILE_OF_KIND[kind],
    ...extra,
    ...allowed.flatMap(nearMisses),
  ]);
  for (const v of allowed) values.delete(v);
  return [...values];
}
