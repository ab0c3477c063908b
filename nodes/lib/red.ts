/**
 * The part of Node-RED's runtime API this pack uses. Kept local (not @types/node-red)
 * so it matches what 4.1 and 5.x actually provide.
 */
import type { EventEmitter } from "node:events";
import type { Router } from "express";

export interface NodeStatus {
  fill?: "red" | "green" | "yellow" | "blue" | "grey";
  shape?: "ring" | "dot";
  text?: string;
}

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  [key: string]: unknown;
}

export type Send = (msg: unknown) => void;
export type Done = (err?: Error) => void;

export interface RedNode extends EventEmitter {
  id: string;
  type: string;
  name?: string;
  z?: string;
  credentials?: Record<string, string | undefined>;
  status(status: NodeStatus | Record<string, never>): void;
  send(msg: unknown): void;
  log(msg: string): void;
  warn(msg: unknown): void;
  error(msg: unknown, original?: unknown): void;
  on(event: "input", fn: (msg: Record<string, unknown>, send: Send, done: Done) => void): this;
  on(event: "close", fn: (removed: boolean, done: () => void) => void): this;
  on(event: string, fn: (...args: never[]) => void): this;
}

export interface NodeRedApi {
  nodes: {
    createNode(node: object, def: NodeDef): void;
    registerType<N extends RedNode>(
      type: string,
      ctor: (this: N, def: NodeDef) => void,
      opts?: { credentials?: Record<string, { type: "text" | "password" }> },
    ): void;
    getNode(id: string): RedNode | null;
    getCredentials(id: string): Record<string, string | undefined> | undefined;
  };
  settings: { userDir?: string; [key: string]: unknown };
  log: {
    info(msg: string): void;
    warn(msg: string): void;
    error(msg: string): void;
    debug(msg: string): void;
  };
  httpAdmin?: Router;
  auth?: {
    needsPermission(permission: string): (req: unknown, res: unknown, next: () => void) => void;
  };
  _?(key: string, subs?: Record<string, unknown>): string;
}
