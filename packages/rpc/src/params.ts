import { DotmeshError } from '@dotmesh/core';
import { z } from 'zod';

/**
 * Go-like decoding of JSON-RPC params into a method's argument, as the original server did
 * with `encoding/json`:
 * - object keys match the schema's field names case-insensitively (the last one wins);
 * - unknown fields are ignored; missing or null fields take the schema's zero value;
 * - `params` may be absent, `null`, `{}`, an object, or (for methods taking a string) a bare
 *   JSON string; absent/null decode to the zero value;
 * - if decoding fails and params is a 1-element array, it is retried with that element
 *   (gorilla/rpc's fallback).
 * Errors are DotmeshError('INVALID_ARGUMENT') naming the method and the field.
 */

/** Largest string accepted in any param field unless a schema says otherwise. */
export const MAX_PARAM_STRING_BYTES = 64 * 1024;

/** A string of at most `maxBytes` UTF-8 bytes, "" when missing. */
export function str(maxBytes: number = MAX_PARAM_STRING_BYTES) {
  return z
    .string({ error: 'must be a string' })
    .refine((s) => s.length <= maxBytes && Buffer.byteLength(s) <= maxBytes, { error: `must be at most ${maxBytes} bytes` })
    .default('');
}

export function bool() {
  return z.boolean({ error: 'must be a boolean' }).default(false);
}

export function int() {
  return z.number({ error: 'must be a number' }).int({ error: 'must be an integer' }).default(0);
}

/** A map of strings (Go `map[string]string`); {} when missing or null. */
export function stringMap(opts: { maxKeys: number; maxKeyBytes: number; maxValueBytes: number }) {
  const message = 'must be an object of strings';
  return z
    .record(z.string(), z.string({ error: message }), { error: message })
    .refine((m) => Object.keys(m).length <= opts.maxKeys, { error: `must have at most ${opts.maxKeys} entries` })
    .refine((m) => Object.keys(m).every((k) => Buffer.byteLength(k) <= opts.maxKeyBytes), {
      error: `must have keys of at most ${opts.maxKeyBytes} bytes`,
    })
    .refine((m) => Object.values(m).every((v) => Buffer.byteLength(v) <= opts.maxValueBytes), {
      error: `must have values of at most ${opts.maxValueBytes} bytes`,
    })
    .default({});
}

/** Schema of the params of a method: an object of Go fields, or a bare string. */
export type ParamsSchema = z.ZodObject<z.ZodRawShape> | z.ZodDefault<z.ZodType<string>>;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Maps incoming keys onto the schema's field names case-insensitively, as Go does: later keys
 * overwrite earlier ones, a null leaves the field as it was (zero value), unknown keys drop.
 */
function foldKeys(raw: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const byLower = new Map(fields.map((f) => [f.toLowerCase(), f]));
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const field = byLower.get(key.toLowerCase());
    if (field !== undefined && value !== null) out[field] = value;
  }
  return out;
}

function describeIssue(method: string, issue: z.core.$ZodIssue): string {
  const field = issue.path[0];
  if (field === undefined) return `${method}: params ${issue.message}`;
  return `${method}: field ${JSON.stringify(String(field))} ${issue.message}`;
}

type Attempt<T> = { ok: true; value: T } | { ok: false; message: string };

function attempt<S extends ParamsSchema>(method: string, schema: S, raw: unknown): Attempt<z.output<S>> {
  let input: unknown = raw;
  if (schema instanceof z.ZodObject) {
    if (raw === undefined || raw === null) input = {};
    else if (isPlainObject(raw)) input = foldKeys(raw, Object.keys(schema.shape));
    else return { ok: false, message: `${method}: params must be an object` };
  } else if (raw === null) {
    input = undefined;
  }
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data as z.output<S> };
  const first = result.error.issues[0];
  return { ok: false, message: first ? describeIssue(method, first) : `${method}: invalid params` };
}

/**
 * Decodes and validates raw params for `method` (its full name, e.g. "DotmeshRPC.Commit",
 * used only in error messages).
 */
export function decodeWithSchema<S extends ParamsSchema>(method: string, schema: S, raw: unknown): z.output<S> {
  const first = attempt(method, schema, raw);
  if (first.ok) return first.value;
  if (Array.isArray(raw) && raw.length === 1) {
    const retry = attempt(method, schema, raw[0]);
    if (retry.ok) return retry.value;
  }
  throw new DotmeshError('INVALID_ARGUMENT', first.message, { hint: "see the API reference for the method's params" });
}
