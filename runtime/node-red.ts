/** The part of the node-red package's embedding API the runtime uses. */
import type { Server } from "node:http";
import type { RequestHandler } from "express";

export interface EmbeddedRed {
  init(server: Server | null, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  httpAdmin: RequestHandler;
  httpNode: RequestHandler;
  runtime: {
    flows: {
      setFlows(opts: { flows: { flows: object[] }; deploymentType?: string }): Promise<unknown>;
    };
  };
  log: { info(msg: string): void; warn(msg: string): void; error(msg: string): void };
  events: { once(event: string, fn: () => void): void };
  hooks: {
    add(id: string, fn: (event: MessageEvent) => void): void;
    remove(id: string): void;
  };
}

/** What the runtime's message hooks (onReceive, postReceive, onComplete) pass. */
export interface MessageEvent {
  msg: { _msgid?: string };
  destination?: { id: string; node?: object };
  node?: { id: string };
}

export function loadNodeRed(): EmbeddedRed {
  // node-red is resolved at run time: a stock Node-RED install of this pack never needs it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require("node-red") as EmbeddedRed;
}
