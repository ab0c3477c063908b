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

// Callers pass the same fields array for a whole batch: sort it once.
const sortedFields = new WeakMap<string[], string[]>();

export function recordHash(record: SyncRecord, fields: string[]): string {
  let sorted = sortedFields.get(fields);
  if (!sorted) sortedFields.set(fields, (sorted = [...fields].sort()));
  // One string, one update: a call into the hash per field cost more than the hashing.
  let text = "";
  for (const field of sorted) text += `${field}\u0002${canonical(record[field])}\u0003`;
  return sha256Hex(text).slice(0, 40);
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
