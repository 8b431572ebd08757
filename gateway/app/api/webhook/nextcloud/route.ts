import { channelModules } from "@/lib/channels";
import { route } from "@/lib/http";
import { receive } from "@/lib/webhooks";

// Nextcloud Talk's bot webhook: signed over random + body, stored before the
// 200 (Talk waits 5 s and never retries), answered after.
export const POST = route((request) => receive(channelModules.nextcloud.inbound, request));
