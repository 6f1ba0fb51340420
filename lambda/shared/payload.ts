/** Validation helpers shared by the Lambdas' payload parsers. */

/** A value shown safely in a reason: JSON-quoted, at most 80 characters. */
export function shown(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * The payload as a record when it is a JSON object whose keys are all in `allowed`; otherwise
 * the reason, naming the first unexpected key (a typo must not silently fall back to a default).
 */
export function payloadRecord(
  event: unknown,
  allowed: ReadonlySet<string>,
):
  | { readonly ok: true; readonly value: Record<string, unknown> }
  | { readonly ok: false; readonly reason: string } {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    return { ok: false, reason: `the payload must be a JSON object, got ${shown(event)}` };
  }
  const value = event as Record<string, unknown>;
  for (const key of Object.keys(value)) {
    if (!allowed.has(key)) {
      return {
        ok: false,
        reason: `${shown(key)} is not an input field; accepted: ${[...allowed].join(', ')}`,
      };
    }
  }
  return { ok: true, value };
}

/** What a Lambda's payload parser returns: the request, or the reason naming the first bad field. */
export type ParsedPayload<T> =
  | { readonly ok: true; readonly request: T }
  | { readonly ok: false; readonly reason: string };

/**
 * Parses a Lambda payload: refuses anything but a JSON object with only `allowed` keys (see
 * {@link payloadRecord}), then hands the record to `parse`, which checks the fields.
 */
export function parsePayload<T>(
  event: unknown,
  allowed: ReadonlySet<string>,
  parse: (record: Record<string, unknown>) => ParsedPayload<T>,
): ParsedPayload<T> {
  const payload = payloadRecord(event, allowed);
  return payload.ok ? parse(payload.value) : payload;
}
