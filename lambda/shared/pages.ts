/**
 * Every item of a paged AWS listing: calls `page` with each page's NextToken (the first call with
 * none) until a page has no NextToken or `maxPages` pages were read, and returns the items of all
 * pages in order. `page` makes the call (with its retry) and picks the items and the token.
 */
export async function allPages<T>(
  page: (token: string | undefined) => Promise<{ readonly items?: readonly T[]; readonly next?: string }>,
  maxPages = Number.POSITIVE_INFINITY,
): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  for (let read = 0; read < maxPages; read++) {
    const out = await page(token);
    items.push(...(out.items ?? []));
    token = out.next;
    if (!token) break;
  }
  return items;
}
