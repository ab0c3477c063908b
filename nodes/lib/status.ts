/** node.status helpers: one wording for every node, and throttled progress updates. */
import type { NodeStatus, RedNode } from "./red";

/** 12345 as "12,345". Not toLocaleString: its first call loads ICU data (about 20 ms),
 *  which a run's first progress update paid. */
export function formatCount(n: number): string {
  if (!Number.isInteger(n)) return n.toLocaleString("en-US");
  return String(n).replace(/\B(?=(\d{3})+$)/g, ",");
}

export function errorStatus(message: string): NodeStatus {
  // The editor shows a status line in one row; the log has the whole message.
  const short = message.length > 80 ? `${message.slice(0, 77)}...` : message;
  return { fill: "red", shape: "ring", text: short };
}

/** Reports failure on the node's status and in the log, the same way everywhere. */
export function reportError(node: RedNode, err: unknown, msg?: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  node.status(errorStatus(message));
  if (msg === undefined) node.error(message);
}

export class ThrottledStatus {
  private last = 0;
  private pending: NodeStatus | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly node: RedNode,
    private readonly intervalMs = 500,
  ) {}

  set(status: NodeStatus): void {
    const now = Date.now();
    if (now - this.last >= this.intervalMs) {
      this.flushNow(status);
      return;
    }
    this.pending = status;
    if (!this.timer) {
      this.timer = setTimeout(
        () => {
          this.timer = null;
          if (this.pending) this.flushNow(this.pending);
        },
        this.intervalMs - (now - this.last),
      );
      this.timer.unref();
    }
  }

  /** Sets a final status at once and drops any pending progress. */
  final(status: NodeStatus): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
    this.flushNow(status);
  }

  private flushNow(status: NodeStatus): void {
    this.last = Date.now();
    this.pending = null;
    this.node.status(status);
  }
}
