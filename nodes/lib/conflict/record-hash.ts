/**
 * A content hash of a record that is equal for equal data read from different
 * databases: values are compared in their lossless text form (bigint "1" and 1,
 * true and 1), fields in name order.
 */
import crypto from "node:crypto";
import type { SyncRecord, Value } from "../types";

function canonical(value: Value | undefined): string {
  if (value === undefined || value === null) return "\u0000";
  if (typeof value === "boolean") return value ? "1" : "0";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return `\u0001${value.toString("hex")}`;
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${k}:${canonical(value[k])}`)
    .join(",")}}`;
}

interface HashLayout {
  sorted: string[];
  /** What comes before each field's value: the previous value's end, the field's name. */
  prefixes: string[];
}

// Callers pass the same fields array for a whole batch: sort it once.
const layouts = new WeakMap<string[], HashLayout>();

function layoutOf(fields: string[]): HashLayout {
  let layout = layouts.get(fields);
  if (!layout) {
    const sorted = [...fields].sort();
    const prefixes = sorted.map((f, i) => `${i ? "\u0003" : ""}${f}\u0002`);
    layouts.set(fields, (layout = { sorted, prefixes }));
  }
  return layout;
}

/** sha256 of `name\u0002value\u0003` for each field in name order, as 40 hex digits. */
export function recordHash(record: SyncRecord, fields: string[]): string {
  if (fields.length === 0) return sha256Hex("").slice(0, 40);
  const { sorted, prefixes } = layoutOf(fields);
  // One string, one update: a call into the hash per field cost more than the hashing.
  let text = prefixes[0] + canonical(record[sorted[0]]);
  for (let i = 1; i < sorted.length; i += 1) text += prefixes[i] + canonical(record[sorted[i]]);
  return sha256Hex(text + "\u0003").slice(0, 40);
}

// crypto.hash (Node 20.12+) hashes a short string in one call, without the Hash object
// createHash builds, about twice as fast for records; same digest.
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: "hex") => string })
  .hash;

function sha256Hex(text: string): string {
  return oneShot
    ? oneShot("sha256", text, "hex")
    : crypto.createHash("sha256").update(text).digest("hex");
}

export function keyString(record: SyncRecord, keyFields: string[]): string {
  return keyOfValues(keyFields.map((k) => record[k]));
}

/** The same text as keyString, from an outcome's key values. */
export function keyOfValues(values: Array<Value | undefined>): string {
  return JSON.stringify(values.map(canonical));
}
