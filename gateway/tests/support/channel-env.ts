// The gateway's channel variables, pointed at the fake Graph API and Talk server
// (or at a closed port): the in-process tests set them in process.env, the e2e
// suites and the benchmark hand them to the production server.

export interface WhatsAppEnvOptions {
  appSecret: string;
  accessToken: string;
  phoneNumberId: string;
  graphUrl: string;
  /** WHATSAPP_ALLOWED_NUMBERS as written in .env: comma-separated. */
  allowedNumbers: string;
}

export interface NextcloudEnvOptions {
  talkUrl: string;
  botSecret: string;
}

export const whatsappEnv = (options: WhatsAppEnvOptions): Record<string, string> => ({
  WHATSAPP_APP_SECRET: options.appSecret,
  WHATSAPP_ACCESS_TOKEN: options.accessToken,
  WHATSAPP_PHONE_NUMBER_ID: options.phoneNumberId,
  WHATSAPP_API_URL: options.graphUrl,
  WHATSAPP_ALLOWED_NUMBERS: options.allowedNumbers,
});

export const nextcloudEnv = (options: NextcloudEnvOptions): Record<string, string> => ({
  NEXTCLOUD_BASE_URL: options.talkUrl,
  NEXTCLOUD_BOT_SECRET: options.botSecret,
});

/** Both channels' variables. */
export const channelEnv = (options: WhatsAppEnvOptions & NextcloudEnvOptions): Record<string, string> => ({
  ...whatsappEnv(options),
  ...nextcloudEnv(options),
});
