/** JSON Schema (draft 2020-12) validation of mapped records, compiled once with ajv. */
import Ajv2020 from "ajv/dist/2020";
import type { ValidateFunction } from "ajv";
import { TributaryError } from "../db/errors";
import type { SyncRecord } from "../types";

export class RecordValidator {
  private readonly validate: ValidateFunction;

  constructor(schemaText: string) {
    let schema: unknown;
    try {
      schema = JSON.parse(schemaText);
    } catch (err) {
      throw new TributaryError("config", `schema is not JSON: ${(err as Error).message}`);
    }
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    try {
      this.validate = ajv.compile(schema as object);
    } catch (err) {
      throw new TributaryError(
        "config",
        `schema is not a valid JSON Schema: ${(err as Error).message}`,
      );
    }
  }

  /** Messages for each violation, or an empty list for a valid record. */
  check(record: SyncRecord): string[] {
    if (this.validate(record)) return [];
    return (this.validate.errors ?? []).map((e) =>
      `${e.instancePath || "(record)"} ${e.message ?? "is invalid"}`.trim(),
    );
  }
}
