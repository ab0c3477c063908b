/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * What the browser tests share: Debian's Chromium launched headless, the editor's
 * login, the Import dialog, the editor's own list of invalid nodes, and numbered
 * screenshots in test-artifacts/browser/ (not committed).
 */
import fs from "node:fs";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { root } from "../e2e/support";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const SHOTS = path.join(root, "test-artifacts", "browser");

export interface EditorNode {
  id: string;
  z: string;
  type: string;
  name: string;
  valid?: boolean;
  client?: string;
}

/** The part of the editor's RED object the tests use. */
export interface EditorRED {
  nodes: {
    eachNode(cb: (n: EditorNode) => void): void;
    eachConfig(cb: (n: EditorNode) => void): void;
  };
  workspaces: { show(id: string): void };
  actions: { invoke(a: string): void };
  sidebar: { show(id: string): void };
  editor: {
    edit(node: unknown): void;
    editConfig(a: string, b: string, c: string): void;
  };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Numbered screenshots `<prefix>NN-<name>.png`, of the page or of another one (a popup). */
export function screenshots(prefix: string, page: () => Page) {
  fs.mkdirSync(SHOTS, { recursive: true });
  let step = 0;
  return async (name: string, on: Page = page()): Promise<void> => {
    step += 1;
    await on.screenshot({
      path: path.join(SHOTS, `${prefix}${String(step).padStart(2, "0")}-${name}.png`),
    });
  };
}

/** Fills the login dialog as a user does; `beforeSubmit` may take a screenshot. */
export async function logIn(
  page: Page,
  url: string,
  password: string,
  beforeSubmit?: () => Promise<void>,
): Promise<void> {
  await page.goto(`${url}/`);
  await page.fill("#node-dialog-login-username", "admin");
  await page.fill("#node-dialog-login-password", password);
  await beforeSubmit?.();
  await page.click("#node-dialog-login-submit");
}

/** Pastes a flow into the Import dialog and imports it into the workspace. */
export async function importFlow(
  page: Page,
  flowJson: string,
  beforeImport?: () => Promise<void>,
): Promise<void> {
  await page.evaluate(() =>
    (window as unknown as { RED: EditorRED }).RED.actions.invoke("core:show-import-dialog"),
  );
  await page.fill("#red-ui-clipboard-dialog-import-text", flowJson);
  await page.press("#red-ui-clipboard-dialog-import-text", "End"); // the dialog validates on keyup
  await page.waitForSelector("#red-ui-clipboard-dialog-ok:not([disabled])");
  await beforeImport?.();
  await page.click("#red-ui-clipboard-dialog-ok");
  await page.mouse.click(700, 450); // place the imported nodes
}

/** The nodes the editor marks invalid (the red triangle; "not properly configured"). */
export function invalidNodes(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const RED = (window as unknown as { RED: EditorRED }).RED;
    const names: string[] = [];
    const check = (n: EditorNode) => {
      if (n.valid === false) names.push(`${n.type} ${n.name}`);
    };
    RED.nodes.eachNode(check);
    RED.nodes.eachConfig(check);
    return names;
  });
}
