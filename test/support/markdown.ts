/** Reading the Markdown the docs tests check against the code: tables and code spans. */

/**
 * The rows (cells trimmed) of the first Markdown table in `text` whose header's first cell is
 * `firstHeader`, up to the first line that is not a table row. Throws naming the header when
 * there is no such table.
 */
export function tableRows(text: string, firstHeader: string): string[][] {
  const lines = text.split('\n').map((l) => l.trim());
  const header = lines.findIndex((l) => l.startsWith(`| ${firstHeader} |`));
  if (header < 0) throw new Error(`no table with the header "${firstHeader}"`);
  const rows: string[][] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
  }
  return rows;
}

/** The `code` spans of a Markdown text, in order. */
export function codeSpans(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
}
