/**
 * Import boundaries between the CDK side and the Lambdas, checked on every `.ts` file of `lib/`,
 * `lambda/`, `contracts/` and `bin/` with TypeScript's own parser (so `import type`, `export …
 * from`, dynamic `import()`, `import('…')` types, `import x = require()` and `require()` all count):
 *
 * - `lambda/` imports nothing from `lib/` or `bin/`: a Lambda bundle must not pull in the CDK app.
 * - `lib/` and `bin/` import nothing from `lambda/`: the stack shares with the Lambdas only through
 *   `contracts/`. A path to a handler file for bundling (NodejsFunction `entry`) is a string, not an
 *   import, and stays allowed.
 * - `contracts/` imports nothing but other files of `contracts/`: no package (not even
 *   aws-cdk-lib or a Node.js builtin), nothing from `lib/` or `lambda/`. Both sides bundle it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO_ROOT = resolve(__dirname, '..');
const CHECKED_FOLDERS = ['lib', 'lambda', 'contracts', 'bin'] as const;
type Folder = (typeof CHECKED_FOLDERS)[number];

/** One module specifier a file names, with its line. */
interface ImportSite {
  readonly specifier: string;
  readonly line: number;
}

/** Every module specifier in a TypeScript source: static, type-only, re-exports, dynamic and require. */
function importSpecifiers(fileName: string, text: string): ImportSite[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const sites: ImportSite[] = [];
  const add = (node: ts.Node, literal: ts.Node | undefined): void => {
    if (literal !== undefined && ts.isStringLiteralLike(literal)) {
      const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
      sites.push({ specifier: literal.text, line });
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) {
      add(node, node.moduleSpecifier);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, node.moduleReference.expression);
    } else if (ts.isCallExpression(node)) {
      const isDynamicImport = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      if (isDynamicImport || isRequire) add(node, node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, node.argument.literal);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return sites;
}

/** The checked folder a repository path lies in, if any. */
function folderOf(repoPath: string): Folder | undefined {
  const top = repoPath.split(sep)[0];
  return (CHECKED_FOLDERS as readonly string[]).includes(top ?? '') ? (top as Folder) : undefined;
}

/** Why an import breaks a boundary, or undefined. `file` and the result are relative to the repository. */
function boundaryViolation(file: string, specifier: string): string | undefined {
  const from = folderOf(file);
  const relativeImport = specifier.startsWith('./') || specifier.startsWith('../');
  const target = relativeImport
    ? relative(REPO_ROOT, resolve(REPO_ROOT, dirname(file), specifier))
    : undefined;
  const to = target === undefined ? undefined : folderOf(target);
  if (from === 'contracts') {
    if (to === 'contracts') return undefined;
    return target === undefined
      ? `contracts/ imports the package ${specifier}; contracts/ imports only contracts/ (both sides bundle it)`
      : `contracts/ imports ${target}; contracts/ imports only contracts/`;
  }
  if (from === 'lambda' && (to === 'lib' || to === 'bin')) {
    return `lambda/ imports ${target} from ${to}/; share it through contracts/ (a Lambda bundle must not pull in the CDK app)`;
  }
  if ((from === 'lib' || from === 'bin') && to === 'lambda') {
    return `${from}/ imports ${target} from lambda/; share it through contracts/ (a handler path for bundling is a string, not an import)`;
  }
  return undefined;
}

/** Every boundary violation of one source text, as `file:line imports 'x': why`. */
function violationsOf(file: string, text: string): string[] {
  return importSpecifiers(file, text).flatMap(({ specifier, line }) => {
    const why = boundaryViolation(file, specifier);
    return why === undefined ? [] : [`${file}:${line} imports '${specifier}': ${why}`];
  });
}

function tsFilesUnder(folder: string): string[] {
  return readdirSync(join(REPO_ROOT, folder), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(REPO_ROOT, join(e.parentPath, e.name)));
}

describe('import boundaries', () => {
  const files = CHECKED_FOLDERS.flatMap((folder) => tsFilesUnder(folder));

  it('finds the source files of every checked folder', () => {
    for (const folder of CHECKED_FOLDERS) {
      expect(files.filter((f) => f.startsWith(`${folder}${sep}`)).length, folder).toBeGreaterThan(0);
    }
    expect(files).toContain(join('lambda', 'alarm-router.ts'));
    expect(files).toContain(join('lambda', 'shared', 'alarm-event.ts'));
    expect(files).toContain(join('contracts', 'routing.ts'));
  });

  it('lambda/ and lib/ do not import each other, and contracts/ imports only contracts/', () => {
    const violations = files.flatMap((f) => violationsOf(f, readFileSync(join(REPO_ROOT, f), 'utf8')));
    expect(violations).toEqual([]);
  });

  it('both sides do share code through contracts/', () => {
    const importsContracts = (folder: Folder) =>
      files
        .filter((f) => f.startsWith(`${folder}${sep}`))
        .some((f) =>
          importSpecifiers(f, readFileSync(join(REPO_ROOT, f), 'utf8')).some(
            ({ specifier }) =>
              folderOf(relative(REPO_ROOT, resolve(REPO_ROOT, dirname(f), specifier))) === 'contracts',
          ),
        );
    expect(importsContracts('lib')).toBe(true);
    expect(importsContracts('lambda')).toBe(true);
  });
});

describe('the boundary check itself', () => {
  const forbidden: [string, string, string][] = [
    [
      'a static import of lib/ from a Lambda',
      'lambda/expand-volume.ts',
      "import { DEFAULT_CONFIG } from '../lib/config';",
    ],
    [
      'an import type of lib/ from lambda/shared',
      'lambda/shared/alarm-event.ts',
      "import type { RemediationConfig } from '../../lib/config';",
    ],
    [
      'a dynamic import() of lib/ from a Lambda',
      'lambda/alarm-router.ts',
      "const m = await import('../lib/thresholds');",
    ],
    [
      'an import(…) type of lib/ from a Lambda',
      'lambda/alarm-router.ts',
      "let c: import('../lib/config').StemeDbConfig;",
    ],
    ['a require() of lib/ from a Lambda', 'lambda/verify-archive.ts', "const c = require('../lib/config');"],
    ['an import of bin/ from a Lambda', 'lambda/verify-archive.ts', "import '../bin/app';"],
    [
      'a re-export of lambda/ from lib/',
      'lib/stemedb-node.ts',
      "export { type NodeRegistryEntry } from '../lambda/shared/alarm-event';",
    ],
    ['an export * of lambda/ from lib/', 'lib/config.ts', "export * from '../lambda/shared/sizing-policy';"],
    [
      'an import = require of lambda/ from lib/',
      'lib/config.ts',
      "import sizing = require('../lambda/shared/sizing-policy');",
    ],
    ['an import of lambda/ from bin/', 'bin/app.ts', "import { handler } from '../lambda/alarm-router';"],
    ['aws-cdk-lib from contracts/', 'contracts/ebs.ts', "import { Size } from 'aws-cdk-lib';"],
    [
      'a Node.js builtin from contracts/',
      'contracts/routing.ts',
      "import { createHash } from 'node:crypto';",
    ],
    [
      'lib/ from contracts/',
      'contracts/routing.ts',
      "import type { RemediationConfig } from '../lib/config';",
    ],
    ['lambda/ from contracts/', 'contracts/alarms.ts', "export { shown } from '../lambda/shared/payload';"],
  ];
  it.each(forbidden)('detects %s, naming the file, the line and the import', (_label, file, line) => {
    const text = `// a fixture\n${line}\n`;
    const violations = violationsOf(file, text);
    expect(violations).toHaveLength(1);
    expect(violations[0]).toContain(`${file}:2 imports '`);
  });

  const allowed: [string, string, string][] = [
    [
      'contracts/ from a Lambda',
      'lambda/shared/sizing-policy.ts',
      "import { VOLUME_LIMITS } from '../../contracts/ebs';",
    ],
    ['contracts/ from lib/', 'lib/config.ts', "import { VOLUME_LIMITS } from '../contracts/ebs';"],
    ['contracts/ from contracts/', 'contracts/routing.ts', "import type { RoutedKind } from './alarms';"],
    ['a package from a Lambda', 'lambda/alarm-router.ts', "import { SSMClient } from '@aws-sdk/client-ssm';"],
    ['lambda/shared from a Lambda', 'lambda/alarm-router.ts', "import { shown } from './shared/payload';"],
    ['lib/ from bin/', 'bin/app.ts', "import { loadConfig } from '../lib/config';"],
    [
      'a handler path for bundling in lib/ (a string, not an import)',
      'lib/remediation-function.ts',
      "export const LAMBDA_DIR = join(__dirname, '..', 'lambda'); const entry = '../lambda/alarm-router.ts';",
    ],
  ];
  it.each(allowed)('allows %s', (_label, file, line) => {
    expect(violationsOf(file, `${line}\n`)).toEqual([]);
  });
});
