// The soak's services: the fake Graph API and fake Nextcloud in this process;
// the fake Ollama, the real agent and the gateway's production build as
// processes, the gateway's channels pointed at the fakes.
import { randomUUID } from "node:crypto";
import { channelEnv } from "../tests/support/channel-env";
import { startFakeGraph } from "../tests/support/fake-graph";
import { startFakeNextcloud } from "../tests/support/fake-nextcloud";
import { secret, startBackend, startGateway } from "../e2e/stack";
import { SENDERS, rooms } from "./soak-config";
import { logDir, phoneNumberId } from "./shared";

export async function startSoakStack() {
  const appSecret = randomUUID().replace(/-/g, "");
  const botSecret = secret() + secret();
  const accessToken = `EAAG${secret()}`;
  const webchatToken = secret();
  const senders = Array.from({ length: SENDERS }, (_, i) => `3361200${String(1000 + i)}`);

  process.stdout.write("starting fake Graph, fake Talk, fake Ollama, agent and gateway…\n");
  const graph = await startFakeGraph({ accessToken, phoneNumberId });
  const talk = await startFakeNextcloud({ secret: botSecret, tokens: rooms });
  const backend = await startBackend(logDir, { env: { LOG_LEVEL: "WARNING" } });
  const gateway = await startGateway({
    ...backend.gateway,
    webchatToken,
    name: "gateway-soak",
    env: {
      LOG_LEVEL: "warn",
      ...channelEnv({ appSecret, accessToken, phoneNumberId, graphUrl: graph.url, allowedNumbers: senders.join(","), talkUrl: talk.url, botSecret }),
    },
  });
  return { graph, talk, agent: backend.agent, gateway, appSecret, botSecret, webchatToken, senders };
}

export type SoakStack = Awaited<ReturnType<typeof startSoakStack>>;
