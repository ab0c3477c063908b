/**
 * The SQLite state store's per-record statements (audit entries, sync states) on a
 * worker thread. better-sqlite3 is synchronous: on the main thread each batch's
 * thousands of B-tree writes stopped Node-RED (messages, the editor, the other
 * flows) for as long as they took. The worker has its own connection to the same
 * file; WAL and the busy timeout order its writes with the main connection's.
 */
import path from "node:path";
import { Worker } from "node:worker_threads";

export type SqliteParam = string | number | null;

interface Request {
  id: number;
  kind: "all" | "run";
  sql: string;
  params: SqliteParam[];
}

export type SqliteReply =
  | { id: number; rows: Array<Record<string, unknown>> | null }
  | { id: number; error: string; code?: string };

interface Waiting {
  resolve(rows: Array<Record<string, unknown>> | null): void;
  reject(err: Error): void;
}

export class SqliteWorker {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private failure: Error | null = null;
  private closed = false;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(readonly file: string) {
    this.worker = new Worker(path.join(__dirname, "sqlite-worker-thread.js"), {
      workerData: { file },
    });
    // An idle worker must not keep Node-RED (or `tributary run`) from exiting.
    this.worker.unref();
    this.worker.on("message", (reply: SqliteReply) => this.settle(reply));
    this.worker.on("error", (err) => this.fail(err));
    this.worker.on("exit", (code) =>
      this.fail(new Error(`the state store's SQLite worker stopped (exit code ${code})`)),
    );
  }

  /** Rows of a query. */
  async all(sql: string, params: SqliteParam[]): Promise<Array<Record<string, unknown>>> {
    return (await this.send("all", sql, params)) ?? [];
  }

  /** Runs a statement (one implicit transaction). */
  async run(sql: string, params: SqliteParam[]): Promise<void> {
    await this.send("run", sql, params);
  }

  /** The thread stopped on its own (not closed): the caller should do without it. */
  get crashed(): boolean {
    return this.failure !== null && !this.closed;
  }

  /** Lets the statements already sent finish, then stops the worker. */
  async close(): Promise<void> {
    const pending = [...this.pending];
    this.closed = true;
    this.failure ??= new Error("the state store is closed");
    await Promise.allSettled(pending);
    await this.worker.terminate();
  }

  private send(
    kind: Request["kind"],
    sql: string,
    params: SqliteParam[],
  ): Promise<Array<Record<string, unknown>> | null> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const answer = new Promise<Array<Record<string, unknown>> | null>((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref(); // keep the process up for the answer
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, kind, sql, params } satisfies Request);
    });
    this.pending.add(answer);
    const forget = () => this.pending.delete(answer);
    answer.then(forget, forget);
    return answer;
  }

  private settle(reply: SqliteReply): void {
    const waiting = this.waiting.get(reply.id);
    if (!waiting) return;
    this.waiting.delete(reply.id);
    if (this.waiting.size === 0) this.worker.unref();
    if ("error" in reply) {
      const err = new Error(reply.error) as Error & { code?: string };
      if (reply.code) err.code = reply.code;
      waiting.reject(err);
    } else waiting.resolve(reply.rows);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const waiting of this.waiting.values()) waiting.reject(this.failure);
    this.waiting.clear();
  }
}
