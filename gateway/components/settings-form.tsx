"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { api, type ApiError, type Persona } from "@/lib/client-api";

const languages: [string, string][] = [
  ["fr", "Français"],
  ["en", "English"],
  ["es", "Español"],
  ["de", "Deutsch"],
  ["it", "Italiano"],
  ["pt", "Português"],
  ["nl", "Nederlands"],
];

export function SettingsForm() {
  const [persona, setPersona] = useState<Persona | null>(null);
  const [status, setStatus] = useState<{ kind: "saved" | "error"; text: string } | null>(null);
  const [isSaving, setIsSaving] = useState(false);
  const router = useRouter();

  useEffect(() => {
    api.settings().then(setPersona, (error: ApiError) => {
      if (error.status === 401) router.replace("/login");
      else setStatus({ kind: "error", text: error.message });
    });
  }, [router]);

  async function save(event: React.FormEvent) {
    event.preventDefault();
    if (!persona) return;
    setIsSaving(true);
    setStatus(null);
    try {
      setPersona(await api.saveSettings(persona));
      setStatus({ kind: "saved", text: "Saved. Every channel uses it from the next message." });
    } catch (error) {
      setStatus({ kind: "error", text: error instanceof Error ? error.message : "Could not save." });
    } finally {
      setIsSaving(false);
    }
  }

  async function logOut() {
    await api.logout().catch(() => undefined);
    router.replace("/login");
    router.refresh();
  }

  const field = "w-full rounded-lg border border-zinc-300 bg-transparent px-3 py-2 outline-none focus:border-blue-500 dark:border-zinc-700 dark:bg-zinc-900";
  const isKnownLanguage = persona ? languages.some(([code]) => code === persona.persona_lang) : true;

  return (
    <main className="mx-auto h-full max-w-2xl overflow-y-auto p-4 sm:p-6">
      <div className="mb-6 flex items-center justify-between">
        <Link href="/" className="text-sm text-blue-600 hover:underline">
          ← Back to the chat
        </Link>
        <button type="button" onClick={logOut} className="text-sm text-zinc-600 hover:underline dark:text-zinc-400">
          Log out
        </button>
      </div>
      <h1 className="mb-4 text-lg font-semibold">Persona</h1>
      {!persona ? (
        <p className="text-zinc-500">{status?.text ?? "Loading…"}</p>
      ) : (
        <form onSubmit={save} className="space-y-4">
          <label className="block space-y-1">
            <span className="text-sm font-medium">Name</span>
            <input
              name="persona_name"
              required
              maxLength={80}
              value={persona.persona_name}
              onChange={(e) => setPersona({ ...persona, persona_name: e.target.value })}
              className={field}
            />
          </label>
          <label className="block space-y-1">
            <span className="text-sm font-medium">Language of the answers</span>
            <select
              name="persona_lang"
              value={persona.persona_lang}
              onChange={(e) => setPersona({ ...persona, persona_lang: e.target.value })}
              className={field}
            >
              {languages.map(([code, label]) => (
                <option key={code} value={code}>
                  {label}
                </option>
              ))}
              {!isKnownLanguage && <option value={persona.persona_lang}>{persona.persona_lang}</option>}
            </select>
          </label>
          <label className="block space-y-1">
            <span className="text-sm font-medium">System prompt</span>
            <span className="block text-xs text-zinc-500">
              Sent with every message from every channel, after the name and language.
            </span>
            <textarea
              name="system_prompt"
              rows={10}
              maxLength={8000}
              value={persona.system_prompt}
              onChange={(e) => setPersona({ ...persona, system_prompt: e.target.value })}
              className={`${field} font-mono text-sm`}
            />
          </label>
          <div className="flex items-center gap-3">
            <button type="submit" disabled={isSaving} className="rounded-lg bg-blue-600 px-4 py-2 font-medium text-white disabled:opacity-50">
              {isSaving ? "Saving…" : "Save"}
            </button>
            {status && (
              <span role="status" className={`text-sm ${status.kind === "error" ? "text-red-600" : "text-emerald-600"}`}>
                {status.text}
              </span>
            )}
          </div>
        </form>
      )}
    </main>
  );
}
