/**
 * Node-RED settings of the hosted runtime. The embedding code passes the values it
 * resolved from the environment (see runtime/server.ts and README "Hosted runtime").
 */
import path from "node:path";

export interface RuntimeSettingsInput {
  userDir: string;
  credentialSecret: string;
  /** bcrypt hash of the admin password; null turns the login off (headless runs). */
  adminPasswordHash: string | null;
  /** bcrypt hash for a read-only "viewer" user, when TRIBUTARY_VIEWER_PASSWORD is set. */
  viewerPasswordHash?: string | null;
  /** false: no editor and no admin API (headless runs). */
  editor: boolean;
  storageModule?: object;
}

/** The package root: Node-RED loads this pack from here as node-red-contrib-tributary. */
export const packageRoot = path.resolve(__dirname, "..");

export function nodeRedSettings(input: RuntimeSettingsInput): Record<string, unknown> {
  return {
    userDir: input.userDir,
    flowFile: "flows.json",
    credentialSecret: input.credentialSecret,
    nodesDir: [packageRoot],
    httpAdminRoot: input.editor ? "/" : false,
    httpNodeRoot: input.editor ? "/hooks" : false,
    uiHost: "127.0.0.1",
    ...(input.adminPasswordHash
      ? {
          adminAuth: {
            type: "credentials",
            users: [
              { username: "admin", password: input.adminPasswordHash, permissions: "*" },
              ...(input.viewerPasswordHash
                ? [{ username: "viewer", password: input.viewerPasswordHash, permissions: "read" }]
                : []),
            ],
          },
        }
      : {}),
    ...(input.storageModule ? { storageModule: input.storageModule } : {}),
    editorTheme: { projects: { enabled: false }, tours: false },
    logging: { console: { level: "info", metrics: false, audit: false } },
    functionExternalModules: false,
    externalModules: { palette: { allowInstall: false } },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
  };
}
