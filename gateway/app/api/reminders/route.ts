import { readJson, route } from "@/lib/http";
import { requireAgent } from "@/lib/auth";
import { createReminder, reminderSchema } from "@/lib/reminders/create";

// The agent's schedule_message tool: a reminder for the chat its turn came from
// (the turn's reply_to). Bearer AGENT_API_KEY; 201 with the short id and the
// next run in CRON_TIMEZONE, or a reason the model can pass on.
export const POST = route(async (request) => {
  requireAgent(request);
  const body = await readJson(request, reminderSchema);
  return Response.json(await createReminder(body), { status: 201 });
});
