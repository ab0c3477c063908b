/**
 * node-red-node-test-helper with types, loading the compiled nodes of this pack.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface HelperNode {
  id: string;
  on(event: string, fn: (...args: never[]) => void): void;
  receive(msg: Record<string, unknown>): void;
  status: { args: unknown[][]; lastCall?: { args: unknown[] } } & ((...a: unknown[]) => void);
  error: { args: unknown[][] } & ((...a: unknown[]) => void);
  warn: { args: unknown[][] } & ((...a: unknown[]) => void);
  [key: string]: unknown;
}

interface Helper {
  init(runtimePath: string, settings?: Record<string, unknown>): void;
  settings(settings: Record<string, unknown>): Record<string, unknown>;
  load(nodes: unknown[], flow: unknown[], credentials?: Record<string, unknown>): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): HelperNode;
  startServer(done: () => void): void;
  stopServer(done: () => void): void;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const helper = require("node-red-node-test-helper") as Helper;

const dist = path.resolve(__dirname, "..", "..", "nodes");
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const dbConnectionNode = require(
  path.join(dist, "db-connection", "db-connection.js"),
) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const dbSourceNode = require(path.join(dist, "db-source", "db-source.js")) as unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const upsertNode = require(path.join(dist, "upsert", "upsert.js")) as unknown;

export const allNodes = [dbConnectionNode, dbSourceNode, upsertNode];

/** A fresh user directory for one test file (state store lives there). */
export function useTempUserDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tributary-test-"));
  helper.init(require.resolve("node-red"), { userDir: dir });
  return dir;
}

/** Resolves when a node's status matches, or rejects after `ms`. */
export function waitForStatus(
  node: HelperNode,
  predicate: (text: string) => boolean,
  ms = 10_000,
): Promise<string> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      for (const call of node.status.args) {
        const text = String((call[0] as { text?: string })?.text ?? "");
        if (predicate(text)) {
          clearInterval(timer);
          resolve(text);
          return;
        }
      }
      if (Date.now() - started > ms) {
        clearInterval(timer);
        reject(
          new Error(
            `status never matched; saw ${JSON.stringify(node.status.args.map((a) => a[0]))}`,
          ),
        );
      }
    }, 20);
  });
}
