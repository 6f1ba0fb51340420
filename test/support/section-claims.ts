import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FileOwner } from '../../contracts/sections';
import { defaultAutomationDefinitionFile } from '../../lib/automation-document';
import { defaultCommandDocumentFiles } from '../../lib/command-document';

/**
 * Which registry entry owns which file (contracts/sections.ts): every Command and Automation
 * document, every host script and every Lambda handler has exactly one owner, a runbook section
 * or the alarm routing. Paths are relative to the repository root, with `/`.
 */

/** The files `owner` claims: its Command documents' YAML and scripts, its Automation YAML, its handlers. */
export function claimedFiles(owner: FileOwner): string[] {
  return [
    ...owner.commands.flatMap((name) => {
      const files = defaultCommandDocumentFiles(name);
      return [files.definitionFile, files.scriptFile];
    }),
    ...owner.automations.map((name) => defaultAutomationDefinitionFile(name)),
    ...owner.lambdas.map((name) => join('lambda', `${name}.ts`)),
  ].map((p) => p.split('\\').join('/'));
}

/**
 * The files under `root` that must each have one owner: `ssm-documents/*.yml`,
 * `ssm-documents/scripts/*.sh` (not the shared `scripts/lib/`) and `lambda/*.ts` (not the shared
 * `lambda/shared/`).
 */
export function filesNeedingAnOwner(root: string): string[] {
  const list = (dir: string, suffix: string) =>
    readdirSync(join(root, dir), { withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith(suffix))
      .map((e) => `${dir}/${e.name}`);
  return [
    ...list('ssm-documents', '.yml'),
    ...list('ssm-documents/scripts', '.sh'),
    ...list('lambda', '.ts'),
  ].sort();
}

/**
 * What is wrong with the ownership of `files` by `owners`, one sentence each: a file nobody
 * claims, a file two owners claim, a claimed file that does not exist under `root`, a test
 * file that does not exist or that two owners list. Empty when every file has exactly one owner.
 */
export function claimProblems(
  root: string,
  files: readonly string[],
  owners: readonly FileOwner[],
): string[] {
  const problems: string[] = [];
  const ownersOf = new Map<string, string[]>();
  for (const owner of owners) {
    for (const file of claimedFiles(owner)) ownersOf.set(file, [...(ownersOf.get(file) ?? []), owner.id]);
  }
  for (const file of files) {
    const by = ownersOf.get(file) ?? [];
    if (by.length === 0) problems.push(`${file} is claimed by no section`);
  }
  for (const [file, by] of ownersOf) {
    if (by.length > 1) problems.push(`${file} is claimed by ${by.length} sections: ${by.join(', ')}`);
    if (!existsSync(join(root, file))) problems.push(`${file} (claimed by ${by.join(', ')}) does not exist`);
  }
  const listedBy = new Map<string, string[]>();
  for (const owner of owners) {
    for (const test of owner.tests) listedBy.set(test, [...(listedBy.get(test) ?? []), owner.id]);
  }
  for (const [test, by] of listedBy) {
    if (by.length > 1) problems.push(`${test} is listed by ${by.length} sections: ${by.join(', ')}`);
    if (!existsSync(join(root, test))) problems.push(`${test} (listed by ${by.join(', ')}) does not exist`);
  }
  return problems;
}

/**
 * Test files named after a file some owner claims (`test/<stem>.….test.ts` or
 * `test/<stem>-….test.ts`, where `<stem>` is a claimed file's name without its suffixes) that
 * this owner does not list in its `tests`: one sentence each.
 */
export function unlistedTestProblems(testFiles: readonly string[], owners: readonly FileOwner[]): string[] {
  const problems: string[] = [];
  for (const owner of owners) {
    const stems = new Set(claimedFiles(owner).map((f) => (f.split('/').pop() ?? f).replace(/\..*$/, '')));
    for (const test of testFiles) {
      const name = test.split('/').pop() ?? test;
      const named = [...stems].some((stem) => name.startsWith(`${stem}.`) || name.startsWith(`${stem}-`));
      if (named && !owner.tests.includes(test))
        problems.push(`${test} is named after a file of ${owner.id}, which does not list it`);
    }
  }
  return problems;
}
