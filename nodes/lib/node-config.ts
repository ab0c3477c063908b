/**
 * Reading node properties from flow JSON (which analysts edit and share by hand):
 * each reader names the field and the fix when the value is wrong.
 */
import { TributaryError } from "./db/errors";

export function listOfNames(value: unknown, field: string, required: boolean): string[] {
  const items = Array.isArray(value)
    ? value.map((v) => String(v).trim())
    : typeof value === "string"
      ? value.split(",").map((v) => v.trim())
      : [];
  const names = items.filter((v) => v !== "");
  if (required && names.length === 0) {
    throw new TributaryError("config", `${field} is empty: name at least one column (e.g. id)`);
  }
  return names;
}

export function requiredText(value: unknown, field: string, example: string): string {
  const text = typeof value === "string" ? value.trim() : "";
  if (!text) throw new TributaryError("config", `${field} is empty: ${example}`);
  return text;
}

export function wholeNumber(value: unknown, field: string, fallback: number, min = 1): number {
  if (value === undefined || value === null || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new TributaryError(
      "config",
      `${field} "${String(value)}" must be a whole number of at least ${min}`,
    );
  }
  return n;
}

export function oneOf<T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined || value === null || value === "") return fallback;
  if ((allowed as readonly string[]).includes(String(value))) return String(value) as T;
  throw new TributaryError(
    "config",
    `${field} "${String(value)}" is not valid: choose ${allowed.join(", ")}`,
  );
}
