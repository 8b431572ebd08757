// The soak's services: the fake Graph API and fake Nextcloud in this process;
// the fake Ollama, the real agent and the gateway's production build as
// processes, the gateway's channels pointed at the fakes.
import { randomUUID } from "node:crypto";
import { startFakeGraph } from "../tests/support/fake-graph";
import { startFakeNextcloud } from "../tests/support/fake-nextcloud";
import { secret, startAgent, startFakeOllama, startGateway } from "../e2e/stack";
import { SENDERS, rooms } from "./soak-config";
import { logDir, phoneNumberId, whatsappEnv } from "./shared";

export async function startSoakStack() {
  const agentKey = secret();
  const appSecret = randomUUID().replace(/-/g, "");
  const botSecret = secret() + secret();
  const accessToken = `EAAG${secret()}`;
  const webchatToken = secret();
  const senders = Array.from({ length: SENDERS }, (_, i) => `3361200${String(1000 + i)}`);

  process.stdout.write("starting fake Graph, fake Talk, fake Ollama, agent and gateway…\n");
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  const talk = await startFakeNextcloud({ secret: botSecret, tokens: rooms });
  const ollama = await startFakeOllama(logDir);
  const agent = await startAgent({ ollamaUrl: ollama.url, apiKey: agentKey, logDir, env: { LOG_LEVEL: "WARNING" } });
  const gateway = await startGateway({
    agentUrl: agent.url,
    agentApiKey: agentKey,
    webchatToken,
    ollamaUrl: ollama.url,
    logDir,
    name: "gateway-soak",
    env: {
      LOG_LEVEL: "warn",
      ...whatsappEnv({ appSecret, accessToken, graphUrl: graph.url, senders }),
      NEXTCLOUD_BASE_URL: talk.url,
      NEXTCLOUD_BOT_SECRET: botSecret,
    },
  });
  return { graph, talk, agent, gateway, appSecret, botSecret, webchatToken, senders };
}

export type SoakStack = Awaited<ReturnType<typeof startSoakStack>>;
