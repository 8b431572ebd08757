import { channelModules } from "@/lib/channels";
import { answerWhatsAppSubscription } from "@/lib/channels/whatsapp";
import { route } from "@/lib/http";
import { receive } from "@/lib/webhooks";

// Meta's WhatsApp Cloud API webhook. GET: the verification handshake when the
// URL is saved (403 with a JSON reason when it is not Meta's). POST: signed
// deliveries, stored before the 200 and answered after.
export const GET = route(async (request) => answerWhatsAppSubscription(request));

export const POST = route((request) => receive(channelModules.whatsapp.inbound, request));
