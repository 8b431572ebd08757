import "server-only";
import { db, retryWhileBusy } from "./client";

// Key/value settings (the persona): read whole, written in one transaction.

export async function getSettings(): Promise<Record<string, string>> {
  const rows = await db().settings.findMany();
  return Object.fromEntries(rows.map((row) => [row.key, row.value]));
}

export async function saveSettings({ values }: { values: Record<string, string> }) {
  await retryWhileBusy(() =>
    db().$transaction(
      Object.entries(values).map(([key, value]) => db().settings.upsert({ where: { key }, create: { key, value }, update: { value } })),
    ),
  );
}
