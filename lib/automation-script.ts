import { readFileSync, realpathSync } from 'node:fs';
import { isAbsolute, join, sep } from 'node:path';
import { REPO_ROOT } from './command-document';

/**
 * The Python of an Automation document's `aws:executeScript` steps, read from files at synth.
 *
 * Each step script is a file under `ssm-documents/automation-scripts/` (one per step, in a folder
 * named after its document, e.g. `archive-wal/resolve-node.py`), runnable and type-checked as it
 * is (`npm run lint` runs pyright over the folder). Helpers used by more than one document live
 * once, in `stemedb_automation.py` beside them; a step script imports what it uses,
 * `from stemedb_automation import error_code, last_json`. An `aws:executeScript` step is one
 * script with no modules of ours beside it, so {@link loadStepScript} replaces that import with
 * the definitions it names, the helpers those call, and the standard-library imports they need,
 * the way `lib/command-document.ts` inlines `scripts/lib/common.sh` into a Command document.
 * Only what a step uses is inlined, which keeps each document well under SSM's 64 KB.
 *
 * The forms the loader reads (anything else is a synth error naming the file and line):
 * - a step script: an optional module docstring (dropped: it describes the file, and the step
 *   has its own `description`), then its import lines (groups separated by blank lines;
 *   `from stemedb_automation import a, b` or its parenthesized form, at most once), then the rest,
 *   which is kept as it is;
 * - the helpers module: a docstring, `import` lines of the standard library only (a helper is
 *   handed the boto3 client it uses), then top-level `def`s and `NAME = ...` constants, each with
 *   its comment lines just above it; inside a definition nothing but indented lines and closing
 *   brackets starts at column 0, and no triple-quoted string but the docstring.
 * A helper is inlined without its comment lines and docstring (they document it here; the document
 * carries its code) when a step imports it or an inlined helper's code names it; an import of the
 * helpers module when an inlined helper's code names one of its bound names. Names are matched as
 * words (a name in a string counts too): never too little, at worst a few lines more.
 * The result must not hold `{{` (SSM would read a parameter reference) or `${` (deploy-time values
 * reach a script through the step's `InputPayload`, never through its text).
 */

/** The folder of the step scripts and the helpers module. */
export const AUTOMATION_SCRIPTS_DIR = join(REPO_ROOT, 'ssm-documents', 'automation-scripts');

/** The shared helpers module, `<AUTOMATION_SCRIPTS_DIR>/stemedb_automation.py`. */
export const HELPERS_MODULE = 'stemedb_automation';

/** The Python runtime of every `aws:executeScript` step (pyrightconfig.json checks this version). */
export const AUTOMATION_PYTHON_RUNTIME = 'python3.11';

/** A step script path relative to the scripts folder: lower-case kebab/snake segments ending in `.py`. */
const SCRIPT_PATH = /^([a-z0-9][a-z0-9_-]*\/)*[a-z0-9][a-z0-9_-]*\.py$/;
/** Modules that are not the standard library (kept in their own import group). */
const THIRD_PARTY = new Set(['boto3', 'botocore']);
const IMPORT_LINE = /^import\s+([A-Za-z_][\w.]*)(\s+as\s+([A-Za-z_]\w*))?\s*$/;
const FROM_IMPORT_START = /^from\s+([A-Za-z_][\w.]*)\s+import\s+(.*)$/;
const WORD = /[A-Za-z_][A-Za-z0-9_]*/g;
const DEFINITION =
  /^(?:(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(|class\s+([A-Za-z_]\w*)\b|([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=))/;

/** Thrown for a script or helpers module the loader cannot read; `problem` names the file and line. */
export class AutomationScriptError extends Error {
  constructor(readonly problem: string) {
    super(problem);
    this.name = 'AutomationScriptError';
  }
}

/** One import statement: its text, the module, and the names it binds. */
interface ImportStatement {
  readonly lines: readonly string[];
  readonly module: string;
  /** The names the statement binds (`json` for `import json`, `a`, `b` for `from m import a, b`). */
  readonly bound: readonly string[];
  /** For `from m import ...`: the imported names (before `as`). */
  readonly names: readonly string[];
}

interface ParsedModule {
  /** Import statements in groups (a blank line separates groups). */
  readonly importGroups: readonly (readonly ImportStatement[])[];
  /** The lines after the imports, as written (leading blank lines included). */
  readonly rest: readonly string[];
  /** 1-based line number of `rest[0]` in the file. */
  readonly restLine: number;
}

interface Definition {
  readonly name: string;
  /** The definition as inlined: without its comment lines and its docstring. */
  readonly code: string;
  /** The words of `code`: the names it may use. */
  readonly words: ReadonlySet<string>;
}

function fail(file: string, line: number | undefined, message: string): never {
  throw new AutomationScriptError(`${file}${line === undefined ? '' : ` line ${line}`}: ${message}`);
}

function wordsOf(text: string): Set<string> {
  return new Set(text.match(WORD) ?? []);
}

/**
 * Drops a leading `"""..."""` module docstring and the blank lines after it; returns the remaining
 * lines and how many were dropped.
 */
function withoutDocstring(lines: readonly string[], file: string): { lines: string[]; dropped: number } {
  const first = (lines[0] ?? '').trimEnd();
  let dropped = 0;
  if (first.startsWith('"""')) {
    if (first.length >= 6 && first.endsWith('"""')) dropped = 1;
    else {
      const end = lines.findIndex((l, i) => i > 0 && l.includes('"""'));
      if (end < 0) fail(file, 1, 'the module docstring is not closed');
      if (!lines[end]?.trimEnd().endsWith('"""'))
        fail(file, end + 1, 'text after the end of the module docstring');
      dropped = end + 1;
    }
    while ((lines[dropped] ?? 'x').trim() === '') dropped += 1;
  }
  return { lines: lines.slice(dropped), dropped };
}

function parseImport(
  lines: readonly string[],
  index: number,
  file: string,
): { statement: ImportStatement; next: number } {
  const line = lines[index] ?? '';
  const plain = IMPORT_LINE.exec(line);
  if (plain !== null) {
    const module = plain[1] as string;
    const bound = plain[3] ?? (module.split('.')[0] as string);
    return { statement: { lines: [line], module, bound: [bound], names: [] }, next: index + 1 };
  }
  const from = FROM_IMPORT_START.exec(line);
  if (from === null) fail(file, index + 1, `not an import line: ${JSON.stringify(line)}`);
  const module = from[1] as string;
  let body = (from[2] as string).trim();
  const taken = [line];
  let next = index + 1;
  if (body.startsWith('(')) {
    while (!body.includes(')')) {
      const more = lines[next];
      if (more === undefined) fail(file, index + 1, 'the parenthesized import is not closed');
      taken.push(more);
      body += ` ${more.trim()}`;
      next += 1;
    }
    if (!body.trimEnd().endsWith(')')) fail(file, next, 'text after the closing parenthesis of an import');
    body = body.trim().slice(1, -1);
  }
  const items = body
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (items.length === 0 || body.includes('*')) fail(file, index + 1, `import the names one by one: ${line}`);
  const names: string[] = [];
  const bound: string[] = [];
  for (const item of items) {
    const m = /^([A-Za-z_]\w*)(\s+as\s+([A-Za-z_]\w*))?$/.exec(item);
    if (m === null) fail(file, index + 1, `cannot read the imported name ${JSON.stringify(item)}`);
    names.push(m[1] as string);
    bound.push(m[3] ?? (m[1] as string));
  }
  return { statement: { lines: taken, module, bound, names }, next };
}

/** Splits a module into its import groups and the rest. */
function parseModule(lines: readonly string[], firstLine: number, file: string): ParsedModule {
  const groups: ImportStatement[][] = [];
  let group: ImportStatement[] = [];
  let i = 0;
  let lastImportEnd = 0;
  while (i < lines.length) {
    const line = lines[i] ?? '';
    if (line.trim() === '') {
      if (group.length > 0) groups.push(group);
      group = [];
      i += 1;
      continue;
    }
    if (!/^(import|from)\s/.test(line)) break;
    const { statement, next } = parseImport(lines, i, `${file}`);
    group.push(statement);
    i = next;
    lastImportEnd = i;
  }
  if (group.length > 0) groups.push(group);
  const rest = lines.slice(lastImportEnd);
  const restLine = firstLine + lastImportEnd;
  rest.forEach((line, k) => {
    if (/^\s*(import|from)\s+stemedb_automation\b/.test(line))
      fail(file, restLine + k, `import ${HELPERS_MODULE} only at the top, with the other imports`);
  });
  return { importGroups: groups, rest, restLine };
}

/** The top-level definitions of the helpers module (after its imports), in file order. */
function parseDefinitions(rest: readonly string[], restLine: number, file: string): Definition[] {
  const blocks: { name: string | undefined; lines: string[]; start: number }[] = [];
  let current: { name: string | undefined; lines: string[]; start: number } | undefined;
  rest.forEach((line, k) => {
    const lineNo = restLine + k;
    if (line.trim() === '') {
      current?.lines.push(line);
      return;
    }
    if (/^[\s)\]}]/.test(line)) {
      if (current === undefined) fail(file, lineNo, 'an indented line outside any definition');
      current.lines.push(line);
      return;
    }
    if (line.startsWith('#')) {
      if (current === undefined || current.name !== undefined) {
        current = { name: undefined, lines: [], start: lineNo };
        blocks.push(current);
      }
      current.lines.push(line);
      return;
    }
    const m = DEFINITION.exec(line);
    const name = m?.[1] ?? m?.[2] ?? m?.[3];
    if (name === undefined)
      fail(
        file,
        lineNo,
        `a top-level line must start a def, a class or a NAME = ... constant: ${JSON.stringify(line)}`,
      );
    if (current !== undefined && current.name === undefined) current.name = name;
    else {
      current = { name, lines: [], start: lineNo };
      blocks.push(current);
    }
    current.lines.push(line);
  });
  const seen = new Set<string>();
  return blocks.map((b) => {
    if (b.name === undefined) fail(file, b.start, 'comment lines at the end belong to no definition');
    if (seen.has(b.name)) fail(file, b.start, `${b.name} is defined twice`);
    seen.add(b.name);
    const code = withoutDocumentation(b.lines, file, b.start);
    return { name: b.name, code, words: wordsOf(code) };
  });
}

/**
 * A helper's lines as inlined: full-line comments and the docstring of a `def` dropped (they
 * document the helper in this repository; the document carries its code), trailing blanks too.
 */
function withoutDocumentation(lines: readonly string[], file: string, start: number): string {
  const code = lines.filter((l) => !/^\s*#/.test(l));
  const header = code.findIndex((l) => /:\s*$/.test(l));
  if (/^(async\s+)?def\s/.test(code[0] ?? '') && header >= 0) {
    const first = header + 1;
    const opening = (code[first] ?? '').trim();
    if (opening.startsWith('"""')) {
      let last = first;
      if (!(opening.length >= 6 && opening.endsWith('"""'))) {
        last = code.findIndex((l, i) => i > first && l.includes('"""'));
        if (last < 0) fail(file, start, 'the docstring is not closed');
      }
      code.splice(first, last - first + 1);
    }
  }
  while (code.length > 0 && (code[code.length - 1] ?? '').trim() === '') code.pop();
  // Comment lines are dropped by line: a multi-line string could hold one, so helpers have none.
  if (code.some((l) => l.includes('"""') || l.includes("'''")))
    fail(
      file,
      start,
      'a helper holds no triple-quoted string but its docstring (its lines would be read as code)',
    );
  return code.join('\n');
}

function readInside(dir: string, relPath: string, what: string): { path: string; text: string } {
  let realDir: string;
  let path: string;
  try {
    realDir = realpathSync(dir);
    path = realpathSync(join(dir, relPath));
  } catch (err) {
    throw new AutomationScriptError(`${what} ${relPath}: ${(err as Error).message}`);
  }
  if (!path.startsWith(realDir + sep))
    throw new AutomationScriptError(`${what} ${relPath} resolves to ${path}, outside ${realDir}`);
  return { path, text: readFileSync(path, 'utf8').replace(/\r\n/g, '\n') };
}

function splitLines(text: string): string[] {
  const lines = text.split('\n');
  while (lines.length > 0 && (lines[lines.length - 1] ?? '').trim() === '') lines.pop();
  return lines;
}

function importText(statement: ImportStatement): string {
  return statement.lines.join('\n');
}

function sortImports(group: readonly ImportStatement[]): ImportStatement[] {
  const key = (s: ImportStatement): string => `${s.lines[0]?.startsWith('from') ? 1 : 0} ${s.module}`;
  return [...group].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

interface Helpers {
  readonly imports: readonly ImportStatement[];
  readonly definitions: readonly Definition[];
}

function loadHelpers(scriptsDir: string): Helpers {
  const { path, text } = readInside(scriptsDir, `${HELPERS_MODULE}.py`, 'helpers module');
  const { lines, dropped } = withoutDocstring(splitLines(text), path);
  const parsed = parseModule(lines, dropped + 1, path);
  const imports = parsed.importGroups.flat();
  for (const s of imports) {
    if (THIRD_PARTY.has(s.module.split('.')[0] as string) || s.module === HELPERS_MODULE)
      fail(
        path,
        undefined,
        `imports ${s.module}: helpers import the standard library only (pass them a client)`,
      );
  }
  return { imports, definitions: parseDefinitions(parsed.rest, parsed.restLine, path) };
}

/** The helper definitions `roots` need (themselves and what they name), in the module's order. */
function helperClosure(helpers: Helpers, roots: readonly string[], file: string): Definition[] {
  const byName = new Map(helpers.definitions.map((d) => [d.name, d]));
  const wanted = new Set<string>();
  const queue = [...roots];
  while (queue.length > 0) {
    const name = queue.pop() as string;
    if (wanted.has(name)) continue;
    const definition = byName.get(name);
    if (definition === undefined)
      fail(file, undefined, `imports ${name}, which ${HELPERS_MODULE}.py does not define`);
    wanted.add(name);
    for (const word of definition.words) if (word !== name && byName.has(word)) queue.push(word);
  }
  return helpers.definitions.filter((d) => wanted.has(d.name));
}

/**
 * The text of the step script `relPath` (relative to `scriptsDir`) as an `aws:executeScript`
 * step's `Script`: its module docstring dropped and its `from stemedb_automation import ...`
 * replaced by the helpers it needs (see the module comment). Throws {@link AutomationScriptError}
 * naming the file (and line) for a path outside the folder, a missing file, an import of a name
 * the helpers do not define, a step that defines a name it also imports, and `{{` or `${` in the
 * result.
 */
export function loadStepScript(relPath: string, scriptsDir: string = AUTOMATION_SCRIPTS_DIR): string {
  if (!SCRIPT_PATH.test(relPath) || relPath.split('/').some((s) => s === '..'))
    throw new AutomationScriptError(
      `script file ${JSON.stringify(relPath)} is not a path of lower-case segments ending in .py, relative to ${scriptsDir}`,
    );
  const base = relPath.split('/').pop() as string;
  if (base === `${HELPERS_MODULE}.py` || base.startsWith('test_'))
    throw new AutomationScriptError(
      `script file ${relPath} is the helpers module or a test, not a step script`,
    );
  const dir = isAbsolute(scriptsDir) ? scriptsDir : join(REPO_ROOT, scriptsDir);
  const { path, text } = readInside(dir, relPath, 'script file');
  const { lines, dropped } = withoutDocstring(splitLines(text), path);
  const parsed = parseModule(lines, dropped + 1, path);
  const fromHelpers = parsed.importGroups.flat().filter((s) => s.module === HELPERS_MODULE);
  for (const s of parsed.importGroups.flat()) {
    if (s.module === HELPERS_MODULE && s.lines[0]?.startsWith('import'))
      fail(
        path,
        undefined,
        `import the helpers by name (from ${HELPERS_MODULE} import a, b) so they can be inlined`,
      );
  }
  if (fromHelpers.length > 1) fail(path, undefined, `import from ${HELPERS_MODULE} once`);
  const imported = fromHelpers[0];
  let script: string;
  if (imported === undefined) {
    script = lines.join('\n');
  } else {
    if (imported.names.some((n, i) => imported.bound[i] !== n))
      fail(
        path,
        undefined,
        `import the helpers under their own names (no "as"): they are inlined as defined`,
      );
    const helpers = loadHelpers(dir);
    const definitions = helperClosure(helpers, imported.names, path);
    const own = new Set(
      parsed.rest
        .map((l) => DEFINITION.exec(l))
        .flatMap((m) => (m === null ? [] : [m[1] ?? m[2] ?? m[3] ?? ''])),
    );
    const clash = definitions.filter((d) => own.has(d.name)).map((d) => d.name);
    if (clash.length > 0)
      fail(path, undefined, `defines ${clash.join(', ')}, which it also gets from ${HELPERS_MODULE}`);
    const groups = parsed.importGroups
      .map((g) => g.filter((s) => s.module !== HELPERS_MODULE))
      .filter((g) => g.length > 0);
    const present = new Set(groups.flat().map(importText));
    const needed = helpers.imports.filter(
      (s) => !present.has(importText(s)) && definitions.some((d) => s.bound.some((b) => d.words.has(b))),
    );
    const stdlib = groups.findIndex((g) =>
      g.every((s) => !THIRD_PARTY.has(s.module.split('.')[0] as string)),
    );
    if (needed.length > 0) {
      if (stdlib >= 0) groups[stdlib] = sortImports([...(groups[stdlib] ?? []), ...needed]);
      else groups.unshift(sortImports(needed));
    }
    const body = [...parsed.rest];
    while (body.length > 0 && (body[0] ?? '').trim() === '') body.shift();
    script = [
      groups.map((g) => g.map(importText).join('\n')).join('\n\n'),
      ...definitions.map((d) => d.code),
      body.join('\n'),
    ]
      .filter((part) => part !== '')
      .join('\n\n\n');
  }
  if (script.includes('{{'))
    fail(
      path,
      undefined,
      'the script (with its helpers) contains "{{", which SSM reads as a parameter reference',
    );
  if (script.includes('${'))
    fail(path, undefined, 'the script contains "${": deploy-time values reach a script through InputPayload');
  return script;
}

/**
 * `script` with its one line `NAME = ''` (a string constant the loader fills) set to `value`.
 * Throws when the script has no such line, or more than one.
 */
export function setScriptConstant(script: string, name: string, value: string, file: string): string {
  const line = `${name} = ''`;
  const lines = script.split('\n');
  const at = lines.flatMap((l, i) => (l === line ? [i] : []));
  if (at.length !== 1) fail(file, undefined, `expected exactly one line ${line}, found ${at.length}`);
  if (!/^[A-Za-z0-9 .:_-]*$/.test(value))
    fail(file, undefined, `the value of ${name} must be plain text, got ${JSON.stringify(value)}`);
  lines[at[0] as number] = `${name} = '${value}'`;
  return lines.join('\n');
}
