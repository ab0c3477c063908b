/** The worker side of SqliteWorker: one connection, statements prepared once. */
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";
import type { SqliteParam, SqliteReply } from "./sqlite-worker";

const db = new Database((workerData as { file: string }).file, { timeout: 5000 });
// The main connection made the file WAL (persistent); this one's own setting:
db.pragma("synchronous = NORMAL");
// A run's writes come in batches of thousands of rows: checkpoint the WAL every ~40 MB
// rather than every 4 MB, so index pages rewritten by batch after batch are copied back
// once, not each time (SQLite's wal_autocheckpoint, in pages).
db.pragma("wal_autocheckpoint = 10000");
const statements = new Map<string, Database.Statement>();

parentPort!.on(
  "message",
  (request: { id: number; kind: "all" | "run"; sql: string; params: SqliteParam[] }) => {
    let reply: SqliteReply;
    try {
      let statement = statements.get(request.sql);
      if (!statement) statements.set(request.sql, (statement = db.prepare(request.sql)));
      const rows =
        request.kind === "all"
          ? (statement.all(...request.params) as Array<Record<string, unknown>>)
          : (statement.run(...request.params), null);
      reply = { id: request.id, rows };
    } catch (err) {
      const { message, code } = err as Error & { code?: string };
      reply = { id: request.id, error: message, ...(code ? { code } : {}) };
    }
    parentPort!.postMessage(reply);
  },
);
