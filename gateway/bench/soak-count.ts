// Every soak message accounted for: the answers at the fake channels (lost,
// duplicated) and the turns in the gateway's database (each delivered, one
// answer each); the deliveries refused.
import Database from "better-sqlite3";
import type { Phase } from "./soak-load";
import type { SoakStack } from "./soak-stack";

/** How many texts got no `Echo: …` answer, and how many answers came more than once. */
function count(answers: Map<string, number>, texts: Iterable<string>) {
  let lost = 0;
  let duplicated = 0;
  for (const text of texts) {
    const times = answers.get(`Echo: ${text}`) ?? 0;
    if (times === 0) lost += 1;
    if (times > 1) duplicated += times - 1;
  }
  return { lost, duplicated };
}

function tally(values: string[]): Map<string, number> {
  const times = new Map<string, number>();
  for (const value of values) times.set(value, (times.get(value) ?? 0) + 1);
  return times;
}

export function countAnswers(phases: Phase[], { graph, talk, gateway }: SoakStack) {
  // At the fake channels…
  const wa = count(tally(graph.sent.map((sent) => sent.body)), phases.flatMap((p) => [...p.whatsapp.values()]));
  const tk = count(tally(talk.posted.map((posted) => posted.message)), phases.flatMap((p) => [...p.talk.values()]));
  const webchatLost = phases.reduce((n, p) => n + p.webchat.sent - p.webchat.answered, 0);
  // …and in the database: every turn delivered, one answer each.
  const sqlite = new Database(gateway.databaseUrl.replace(/^file:/, ""), { readonly: true });
  const states = Object.fromEntries(
    (sqlite.prepare(`SELECT state, COUNT(*) AS n FROM "Turn" GROUP BY state`).all() as { state: string; n: number }[]).map((r) => [r.state, r.n]),
  );
  const turnsWithoutAnswer = (sqlite.prepare(`SELECT COUNT(*) AS n FROM "Turn" WHERE "answerMessageId" IS NULL`).get() as { n: number }).n;
  const assistantMessages = (sqlite.prepare(`SELECT COUNT(*) AS n FROM "Message" WHERE role = 'assistant'`).get() as { n: number }).n;
  const turns = (sqlite.prepare(`SELECT COUNT(*) AS n FROM "Turn"`).get() as { n: number }).n;
  sqlite.close();

  return {
    accepted: phases.reduce((n, p) => n + p.whatsapp.size + p.talk.size + p.webchat.sent, 0),
    whatsapp: { sent: graph.sent.length, ...wa },
    nextcloud: { posted: talk.posted.length, ...tk },
    webchat: { lost: webchatLost },
    database: { turns, by_state: states, without_answer: turnsWithoutAnswer, assistant_messages: assistantMessages },
    lost: wa.lost + tk.lost + webchatLost,
    duplicated: wa.duplicated + tk.duplicated + Math.max(0, assistantMessages - turns),
  };
}

/** Deliveries (and webchat posts) not accepted, over all phases, by reason. */
export function countRefusals(phases: Phase[]) {
  const refusals = new Map<string, number>();
  for (const [why, times] of phases.flatMap((p) => [...p.ackFailures])) refusals.set(why, (refusals.get(why) ?? 0) + times);
  return { total: [...refusals.values()].reduce((a, b) => a + b, 0), by_reason: Object.fromEntries(refusals) };
}
