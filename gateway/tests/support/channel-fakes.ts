import { channelEnv, type NextcloudEnvOptions, type WhatsAppEnvOptions } from "./channel-env";
import { startFakeAgent, type FakeAgent } from "./fake-agent";
import { startFakeGraph, type FakeGraph } from "./fake-graph";
import { startFakeNextcloud, type FakeNextcloud } from "./fake-nextcloud";

// The three fakes a suite that drives the webhook routes in-process talks to
// (the agent, Meta's Graph API, Talk's bot API), and the gateway's variables
// pointed at them.

export interface ChannelFakes {
  agent: FakeAgent;
  graph: FakeGraph;
  talk: FakeNextcloud;
  /** AGENT_URL and both channels' variables, for process.env. */
  env: Record<string, string>;
  /** Forgets what the fakes recorded and gives the agent its default reply back. */
  forget(): void;
  close(): Promise<void>;
}

export async function startChannelFakes(
  options: Omit<WhatsAppEnvOptions, "graphUrl"> & Omit<NextcloudEnvOptions, "talkUrl"> & { rooms: string[]; agentApiKey?: string },
): Promise<ChannelFakes> {
  const agent = await startFakeAgent(options.agentApiKey === undefined ? {} : { apiKey: options.agentApiKey });
  const graph = await startFakeGraph({ accessToken: options.accessToken, phoneNumberId: options.phoneNumberId });
  const talk = await startFakeNextcloud({ secret: options.botSecret, tokens: options.rooms });
  return {
    agent,
    graph,
    talk,
    env: { AGENT_URL: agent.url, ...channelEnv({ ...options, graphUrl: graph.url, talkUrl: talk.url }) },
    forget: () => {
      agent.requests.length = 0;
      agent.reply = () => ({});
      graph.sent.length = 0;
      graph.reads.length = 0;
      talk.posted.length = 0;
    },
    close: async () => void (await Promise.all([agent.close(), graph.close(), talk.close()])),
  };
}
