/** The part of pg-copy-streams (no types of its own) that pg-copy.ts uses. */
declare module "pg-copy-streams" {
  import type { Readable } from "node:stream";
  import type { Submittable } from "pg";

  export interface CopyToStreamQuery extends Readable, Submittable {
    rowCount: number;
  }
  export function to(text: string): CopyToStreamQuery;
}
