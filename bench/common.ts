/** Shared by the benchmark's contender scripts: the workload's tables and a report line. */
export const SOURCE_TABLE = process.env.BENCH_TABLE || "bench_customers";
export const COLUMNS = [
  "id",
  "email",
  "first_name",
  "last_name",
  "phone",
  "city",
  "country",
  "status",
  "balance",
  "created_at",
  "updated_at",
];

export interface ChildReport {
  rows: number;
  wallSeconds: number;
  maxRssMb: number;
}

/** The last line a contender prints: what it moved and how long the sync took. */
export function report(rows: number, startedAt: number): void {
  const out: ChildReport = {
    rows,
    wallSeconds: (performance.now() - startedAt) / 1000,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
  };
  process.stdout.write(`BENCH ${JSON.stringify(out)}\n`);
}
