import type { NodeDef, NodeRedApi, RedNode } from "../lib/red";
import { registerManagementRoutes } from "../lib/api/routes";
import { credentialSecretOf, registerOAuthRoutes } from "../lib/api/oauth-routes";
import {
  connectionLabel,
  createProvider,
  parseCrmSettings,
  sealedTokens,
  type CrmConnectionConfig,
  type CrmConnectionNode,
} from "../lib/crm/index";
import type { CrmProvider, CrmSettings } from "../lib/crm/provider";
import { connectionEvents } from "../lib/crm/revoke";
import { vaultFor } from "../lib/crm/token-vault";
import { TributaryError } from "../lib/db/errors";
import { stateStoreFor } from "../lib/state-store";

const SECRET = { type: "password" } as const;
const TEXT = { type: "text" } as const;

export = function register(RED: NodeRedApi): void {
  registerManagementRoutes(RED);
  registerOAuthRoutes(RED);

  function CrmConnectionNodeCtor(this: RedNode & CrmConnectionNode, def: NodeDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    let settings: CrmSettings | null = null;
    let provider: CrmProvider | null = null;
    let configError: Error | null = null;
    let revoked: Error | null = null;
    try {
      settings = parseCrmSettings(def as CrmConnectionConfig, this.credentials ?? {});
    } catch (err) {
      configError = err as Error;
      this.error(`${def.name || "crm connection"}: ${configError.message}`);
    }

    node.crmSettings = () => {
      if (configError) throw configError;
      return settings!;
    };
    node.label = () => (settings ? connectionLabel(settings) : String(def.provider ?? "crm"));
    // One provider per config node: its concurrency limit and token are the connection's.
    node.provider = () => {
      if (configError) throw configError;
      if (revoked) throw revoked;
      if (!provider) {
        const s = settings!;
        const tokens =
          s.authType === "oauth2"
            ? sealedTokens(async () =>
                vaultFor(
                  credentialSecretOf(RED.settings),
                  await stateStoreFor(RED.settings.userDir),
                ).forConnection(node.id, s.provider),
              )
            : undefined;
        provider = createProvider(s, tokens);
      }
      return provider;
    };

    const stopListening = connectionEvents.onRevoked((event) => {
      if (event.connectionId !== node.id) return;
      revoked = new TributaryError(
        "revoked",
        `the connection was revoked (${event.status}): open it and click Connect to authorize again, then redeploy`,
      );
      provider = null;
    });
    node.on("close", (_removed: boolean, done: () => void) => {
      stopListening();
      done();
    });
  }

  RED.nodes.registerType("tributary-crm-connection", CrmConnectionNodeCtor, {
    credentials: {
      clientId: TEXT,
      clientSecret: SECRET,
      token: SECRET,
      username: TEXT,
      password: SECRET,
      securityToken: SECRET,
      privateKey: SECRET,
    },
  });
};
