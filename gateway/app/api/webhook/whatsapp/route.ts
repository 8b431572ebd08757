import { route } from "@/lib/http";
import { answerWhatsAppSubscription, receiveWhatsApp } from "@/lib/webhooks";

// Meta's WhatsApp Cloud API webhook. GET: the verification handshake when the
// URL is saved. POST: signed deliveries, stored before the 200 and answered after.
export const GET = route(async (request) => answerWhatsAppSubscription(request));

export const POST = route(receiveWhatsApp);
