import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { collectOutput } from './child-process';

/**
 * `systemctl` and `journalctl` stand-ins for tests, so scripts that call plain
 * `systemctl restart <unit>` / `journalctl -u <unit> --since ...` run unchanged.
 *
 * `createFakeSystemd(units)` makes a temp directory with `bin/systemctl`, `bin/journalctl` (put
 * `bin` first on PATH: `env` does that) and a state directory. A unit is a command line that
 * `systemctl start` runs in the background in its own session (like systemd, outside the
 * caller's process group), with its stdout and stderr going, line by line and timestamped, into
 * the journal file. Supported:
 * - `systemctl start|stop|restart|is-active|status [--no-pager] [-q] <unit>[.service]`,
 *   `systemctl daemon-reload` (no-op). Units behave like `Type=simple`: `start` returns once
 *   the process is forked, unless the unit sets `startCheckMs` (then `start` watches it that long and
 *   fails, exit 1, as soon as the process exits, like a failed `Type=exec/notify` job).
 *   `stop` sends SIGTERM, SIGKILL after 5 s. `is-active` prints active | inactive | failed (exit
 *   0 only for active); a unit whose process exited non-zero without `stop` is `failed`.
 *   Unknown units: exit 5, as systemd.
 * - `journalctl [-u unit] [--since T] [-o short|cat] [-n N] [-q] [--no-pager]`: T is
 *   `@<epoch seconds[.fraction]>` or anything `date -d` reads (e.g. `2026-01-02 03:04:05`, local
 *   time). Prints `-- No entries --` when nothing matches, unless `-q`. `--vacuum-time=<N>d|h|s`
 *   drops the entries older than that and prints journald's `Vacuuming done, freed <N>B ...` line.
 *   Other options: exit 1.
 *   systemctl's own lines (`Starting ...`, `Stopped ...`, `Main process exited ...`) are in the
 *   journal too, as systemd writes them.
 *
 * The journal file holds one entry per line: `<epoch.usec>\t<unit>\t<pid>\t<message>`.
 * Only processes these scripts started are ever signalled (by the pids they recorded).
 */

export interface FakeUnit {
  /** Command line of the service (ExecStart). */
  readonly command: readonly string[];
  /** WorkingDirectory. @default the state directory */
  readonly workingDirectory?: string;
  /** Extra environment (Environment=). */
  readonly environment?: Readonly<Record<string, string>>;
  /** Shown by `systemctl status`. */
  readonly description?: string;
  /** `start` watches the process this long and fails as soon as it exits. @default 0 (Type=simple) */
  readonly startCheckMs?: number;
}

export interface JournalEntry {
  /** Seconds since the epoch. */
  readonly time: number;
  readonly unit: string;
  readonly pid: number;
  readonly message: string;
}

export interface CommandOutput {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface FakeSystemd {
  readonly rootDir: string;
  /** Holds `systemctl` and `journalctl`; first on PATH in `env`. */
  readonly binDir: string;
  readonly stateDir: string;
  readonly journalFile: string;
  /** `{ PATH: <binDir>:<process PATH> }`, to merge into a child's environment. */
  readonly env: { PATH: string };
  /** Defines or replaces a unit (takes effect at its next start). */
  defineUnit(name: string, unit: FakeUnit): void;
  /** Runs the fake `systemctl` with these arguments. */
  systemctl(...args: string[]): Promise<CommandOutput>;
  /** Runs the fake `journalctl` with these arguments. */
  journalctl(...args: string[]): Promise<CommandOutput>;
  /** Parsed journal entries, of one unit or all. */
  journal(unit?: string): JournalEntry[];
  /** The unit's main process id while it runs. */
  mainPid(unit: string): number | undefined;
  /** Stops every unit (SIGKILL for any that do not stop) and removes the temp directory. */
  cleanup(): Promise<void>;
}

const UNIT_NAME = /^[A-Za-z0-9][A-Za-z0-9@._-]{0,99}$/;

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const SYSTEMCTL = `#!/usr/bin/env bash
# systemctl stand-in for tests (test/support/fake-systemd.ts).
set -o pipefail
export LC_ALL=C
STATE=@STATE@
JOURNAL="$STATE/journal"

jlog() { printf '%s\\t%s\\t%s\\t%s\\n' "$EPOCHREALTIME" "$1" "$2" "$3" >> "$JOURNAL"; }
main_pid() { cat "$STATE/units/$1/main.pid" 2>/dev/null; }
running() { local pid; pid=$(main_pid "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
known() { [ -f "$STATE/units/$1/exec" ]; }

wait_wrapper() {
  local w i
  w=$(cat "$STATE/units/$1/wrapper.pid" 2>/dev/null) || return 0
  for ((i = 0; i < 1000; i++)); do kill -0 "$w" 2>/dev/null || return 0; sleep 0.01; done
}

start_unit() {
  local u="$1" dir="$STATE/units/$1" i check
  running "$u" && return 0
  wait_wrapper "$u"
  rm -f "$dir/main.pid" "$dir/stopping" "$dir/result" "$dir/launched"
  jlog "$u" 1 "Starting $u.service..."
  setsid bash "$STATE/run-unit" "$u" </dev/null >/dev/null 2>&1 9>&- &
  for ((i = 0; i < 500; i++)); do [ -e "$dir/launched" ] && break; sleep 0.01; done
  jlog "$u" 1 "Started $u.service."
  check=$(cat "$dir/start-check-ms" 2>/dev/null || echo 0)
  for ((i = 0; i < check / 10; i++)); do
    if ! running "$u"; then
      echo "Job for $u.service failed because the control process exited with error code." >&2
      echo "See \\"systemctl status $u.service\\" and \\"journalctl -xeu $u.service\\" for details." >&2
      return 1
    fi
    sleep 0.01
  done
}

stop_unit() {
  local u="$1" dir="$STATE/units/$1" pid i
  if ! running "$u"; then wait_wrapper "$u"; return 0; fi
  pid=$(main_pid "$u")
  touch "$dir/stopping"
  jlog "$u" 1 "Stopping $u.service..."
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 500; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
  if kill -0 "$pid" 2>/dev/null; then
    jlog "$u" 1 "$u.service: State 'stop-sigterm' timed out. Killing."
    kill -KILL "$pid" 2>/dev/null
  fi
  wait_wrapper "$u"
  jlog "$u" 1 "Stopped $u.service."
}

state_of() {
  if running "$1"; then echo active
  elif [ "$(cat "$STATE/units/$1/result" 2>/dev/null)" = failed ]; then echo failed
  else echo inactive
  fi
}

status_unit() {
  local u="$1" st since
  st=$(state_of "$u")
  echo "● $u.service - $(cat "$STATE/units/$u/description" 2>/dev/null)"
  echo "     Loaded: loaded (/etc/systemd/system/$u.service; enabled; preset: disabled)"
  case "$st" in
    active)
      since=$(cat "$STATE/units/$u/active-since" 2>/dev/null || echo 0)
      printf '     Active: active (running) since %(%a %Y-%m-%d %H:%M:%S %Z)T\\n' "\${since%.*}"
      echo "   Main PID: $(main_pid "$u")" ;;
    failed) echo "     Active: failed (Result: exit-code)" ;;
    *) echo "     Active: inactive (dead)" ;;
  esac
  echo
  "$(dirname "$0")/journalctl" -u "$u" -n 10 -q --no-pager
  [ "$st" = active ]
}

quiet=0
args=()
for a in "$@"; do
  case "$a" in
    --no-pager | --no-ask-password | --full | -l) ;;
    -q | --quiet) quiet=1 ;;
    -*) echo "systemctl (fake): unsupported option $a" >&2; exit 1 ;;
    *) args+=("$a") ;;
  esac
done
verb="\${args[0]:-}"
[ "$verb" = daemon-reload ] && exit 0
unit="\${args[1]:-}"
unit="\${unit%.service}"
if [ -z "$unit" ] || [ "\${#args[@]}" -ne 2 ]; then
  echo "systemctl (fake): usage: systemctl start|stop|restart|is-active|status <unit>" >&2; exit 1
fi
if ! known "$unit"; then
  if [ "$verb" = is-active ]; then [ "$quiet" = 1 ] || echo inactive; exit 3; fi
  echo "Failed to $verb $unit.service: Unit $unit.service not found." >&2; exit 5
fi
exec 9>"$STATE/units/$unit/lock"
flock 9
case "$verb" in
  start) start_unit "$unit" ;;
  stop) stop_unit "$unit" ;;
  restart) stop_unit "$unit" && start_unit "$unit" ;;
  is-active) st=$(state_of "$unit"); [ "$quiet" = 1 ] || echo "$st"; [ "$st" = active ] || exit 3 ;;
  status) status_unit "$unit" || exit 3 ;;
  *) echo "systemctl (fake): unsupported command $verb" >&2; exit 1 ;;
esac
`;

const RUN_UNIT = `#!/usr/bin/env bash
# Runs one unit's command for the fake systemctl: records pids, timestamps its output into the
# journal, records how it ended.
export LC_ALL=C
STATE=@STATE@
JOURNAL="$STATE/journal"
u="$1"
dir="$STATE/units/$u"
jlog() { printf '%s\\t%s\\t%s\\t%s\\n' "$EPOCHREALTIME" "$u" "$1" "$2" >> "$JOURNAL"; }
stamp() {
  local line pid=0
  while IFS= read -r line || [ -n "$line" ]; do
    [ "$pid" = 0 ] && pid=$(cat "$dir/main.pid" 2>/dev/null || echo 0)
    jlog "$pid" "$line"
  done
}
# A service inherits no descriptors from the systemctl caller (e.g. a lock held by a script).
for fd in /proc/$$/fd/*; do
  fd=\${fd##*/}
  if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null; fi
done
echo $$ > "$dir/wrapper.pid"
rm -f "$dir/out.fifo"
mkfifo "$dir/out.fifo"
stamp < "$dir/out.fifo" &
stamper=$!
bash "$dir/exec" > "$dir/out.fifo" 2>&1 &
main=$!
printf '%s\\n' "$EPOCHREALTIME" > "$dir/active-since"
echo "$main" > "$dir/main.pid.tmp" && mv -f "$dir/main.pid.tmp" "$dir/main.pid"
touch "$dir/launched"
wait "$main"
rc=$?
wait "$stamper"
rm -f "$dir/main.pid" "$dir/out.fifo"
if [ -e "$dir/stopping" ]; then
  echo stopped > "$dir/result"
  jlog 1 "$u.service: Deactivated successfully."
elif [ "$rc" -eq 0 ]; then
  echo exited > "$dir/result"
  jlog 1 "$u.service: Deactivated successfully."
else
  echo failed > "$dir/result"
  jlog 1 "$u.service: Main process exited, code=exited, status=$rc/FAILURE"
  jlog 1 "$u.service: Failed with result 'exit-code'."
fi
rm -f "$dir/wrapper.pid"
`;

const JOURNALCTL = `#!/usr/bin/env bash
# journalctl stand-in for tests (test/support/fake-systemd.ts).
set -o pipefail
export LC_ALL=C
STATE=@STATE@
unit='' since='' output=short quiet=0 lines=''
while [ $# -gt 0 ]; do
  case "$1" in
    -u | --unit) unit="$2"; shift 2 ;;
    --unit=*) unit="\${1#--unit=}"; shift ;;
    -S | --since) since="$2"; shift 2 ;;
    --since=*) since="\${1#--since=}"; shift ;;
    -o | --output) output="$2"; shift 2 ;;
    --output=*) output="\${1#--output=}"; shift ;;
    -n | --lines) lines="$2"; shift 2 ;;
    --lines=*) lines="\${1#--lines=}"; shift ;;
    -q | --quiet) quiet=1; shift ;;
    --no-pager | --no-hostname) shift ;;
    --vacuum-time=*) vacuum="\${1#--vacuum-time=}"; shift ;;
    *) echo "journalctl (fake): unsupported argument $1" >&2; exit 1 ;;
  esac
done
if [ -n "\${vacuum:-}" ]; then
  # journald deletes archived journal data older than the time; here: entries of the one file.
  case "$vacuum" in
    *d) age=$(( \${vacuum%d} * 86400 )) ;;
    *h) age=$(( \${vacuum%h} * 3600 )) ;;
    *s) age=\${vacuum%s} ;;
    *) echo "Failed to parse time specification: $vacuum" >&2; exit 1 ;;
  esac
  cutoff=$(( $(date +%s) - age ))
  before=$(wc -c < "$STATE/journal")
  awk -F '\t' -v cutoff="$cutoff" '$1 + 0 >= cutoff + 0' "$STATE/journal" > "$STATE/journal.vacuum"
  mv "$STATE/journal.vacuum" "$STATE/journal"
  after=$(wc -c < "$STATE/journal")
  echo "Vacuuming done, freed $(( before - after ))B of archived journals from $STATE."
  exit 0
fi
case "$output" in short | cat) ;; *) echo "journalctl (fake): unsupported output $output" >&2; exit 1 ;; esac
unit="\${unit%.service}"
since_epoch=0
if [ -n "$since" ]; then
  case "$since" in
    @*) since_epoch="\${since#@}" ;;
    *) since_epoch=$(date -d "$since" +%s.%N 2>/dev/null) || { echo "Failed to parse timestamp: $since" >&2; exit 1; } ;;
  esac
fi
selected=$(awk -F '\\t' -v unit="$unit" -v since="$since_epoch" \\
  '(unit == "" || $2 == unit) && ($1 + 0 >= since + 0)' "$STATE/journal")
if [ -n "$lines" ]; then selected=$(printf '%s\\n' "$selected" | tail -n "$lines"); fi
if [ -z "$selected" ]; then
  [ "$quiet" = 1 ] || echo "-- No entries --"
  exit 0
fi
host=$(hostname 2>/dev/null || echo localhost)
while IFS=$'\\t' read -r ts u pid msg; do
  if [ "$output" = cat ]; then
    printf '%s\\n' "$msg"
  else
    printf '%(%b %d %H:%M:%S)T %s %s[%s]: %s\\n' "\${ts%.*}" "$host" "$u" "$pid" "$msg"
  fi
done <<< "$selected"
`;

function runTool(path: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<CommandOutput> {
  return new Promise((done, fail) => {
    const child = spawn(path, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const output = collectOutput(child);
    child.on('error', fail);
    child.on('close', (code) => done({ code: code ?? 1, stdout: output.stdout, stderr: output.stderr }));
  });
}

function readPid(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Creates the stand-ins and defines the given units (none is started). */
export function createFakeSystemd(units: Readonly<Record<string, FakeUnit>> = {}): FakeSystemd {
  const rootDir = mkdtempSync(join(tmpdir(), 'fake-systemd-'));
  const binDir = join(rootDir, 'bin');
  const stateDir = join(rootDir, 'state');
  const journalFile = join(stateDir, 'journal');
  mkdirSync(binDir);
  mkdirSync(join(stateDir, 'units'), { recursive: true });
  writeFileSync(journalFile, '');
  const install = (path: string, text: string): void => {
    writeFileSync(path, text.replaceAll('@STATE@', shq(stateDir)));
    chmodSync(path, 0o755);
  };
  install(join(binDir, 'systemctl'), SYSTEMCTL);
  install(join(binDir, 'journalctl'), JOURNALCTL);
  install(join(stateDir, 'run-unit'), RUN_UNIT);

  const path = [binDir, process.env.PATH ?? '/usr/bin:/bin'].join(delimiter);
  const env = { PATH: path };
  const toolEnv = { ...process.env, PATH: path };
  const defined = new Set<string>();

  const defineUnit = (name: string, unit: FakeUnit): void => {
    if (!UNIT_NAME.test(name) || name.endsWith('.service')) throw new Error(`invalid unit name ${name}`);
    if (unit.command.length === 0) throw new Error(`unit ${name}: empty command`);
    const dir = join(stateDir, 'units', name);
    mkdirSync(dir, { recursive: true });
    const lines = [`cd ${shq(unit.workingDirectory ?? stateDir)} || exit 200`];
    for (const [k, v] of Object.entries(unit.environment ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`unit ${name}: invalid variable name ${k}`);
      lines.push(`export ${k}=${shq(v)}`);
    }
    lines.push(`exec ${unit.command.map(shq).join(' ')}`);
    writeFileSync(join(dir, 'exec'), `${lines.join('\n')}\n`);
    writeFileSync(join(dir, 'start-check-ms'), `${Math.max(0, Math.round(unit.startCheckMs ?? 0))}\n`);
    writeFileSync(join(dir, 'description'), `${unit.description ?? name}\n`);
    defined.add(name);
  };
  for (const [name, unit] of Object.entries(units)) defineUnit(name, unit);

  const journal = (unit?: string): JournalEntry[] => {
    const text = existsSync(journalFile) ? readFileSync(journalFile, 'utf8') : '';
    const entries: JournalEntry[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const [ts, u, pid, ...rest] = line.split('\t');
      if (unit !== undefined && u !== unit) continue;
      entries.push({ time: Number(ts), unit: u ?? '', pid: Number(pid), message: rest.join('\t') });
    }
    return entries;
  };

  let cleaned = false;
  return {
    rootDir,
    binDir,
    stateDir,
    journalFile,
    env,
    defineUnit,
    systemctl: (...args) => runTool(join(binDir, 'systemctl'), args, toolEnv),
    journalctl: (...args) => runTool(join(binDir, 'journalctl'), args, toolEnv),
    journal,
    mainPid(unit) {
      const pid = readPid(join(stateDir, 'units', unit, 'main.pid'));
      return pid !== undefined && alive(pid) ? pid : undefined;
    },
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      for (const unit of defined) {
        await runTool(join(binDir, 'systemctl'), ['stop', unit], toolEnv).catch(() => undefined);
        for (const file of ['main.pid', 'wrapper.pid']) {
          const pid = readPid(join(stateDir, 'units', unit, file));
          if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
        }
      }
      rmSync(rootDir, { recursive: true, force: true });
    },
  };
}
