"use client";

import Link from "next/link";
import { viewOf } from "@/lib/channels/views";
import type { ConversationSummary } from "@/lib/client-api";


export function ConversationList({
  conversations,
  activeId,
  onSelect,
  onNew,
  onDelete,
}: {
  conversations: ConversationSummary[];
  activeId: string | null;
  onSelect: (id: string) => void;
  onNew: () => void;
  onDelete: (id: string) => void;
}) {
  return (
    <nav className="flex h-full flex-col gap-2 p-3" aria-label="Conversations">
      <button
        type="button"
        onClick={onNew}
        data-testid="new-conversation"
        className="rounded-lg bg-blue-600 px-3 py-2 text-sm font-medium text-white"
      >
        New conversation
      </button>
      <ul className="flex-1 space-y-1 overflow-y-auto" data-testid="conversation-list">
        {conversations.map((conversation) => (
          <li key={conversation.id} className="group flex items-center gap-1">
            <button
              type="button"
              onClick={() => onSelect(conversation.id)}
              aria-current={conversation.id === activeId ? "true" : undefined}
              className={`min-w-0 flex-1 rounded-lg px-2 py-2 text-left text-sm ${
                conversation.id === activeId ? "bg-zinc-200 dark:bg-zinc-800" : "hover:bg-zinc-100 dark:hover:bg-zinc-900"
              }`}
            >
              <span className="block truncate">{conversation.title ?? "Untitled"}</span>
              <span className="text-xs text-zinc-500">
                {viewOf(conversation.channel).shortLabel} · {new Date(conversation.updatedAt).toLocaleString()}
              </span>
            </button>
            <button
              type="button"
              aria-label="Delete conversation"
              onClick={() => onDelete(conversation.id)}
              className="rounded p-2 text-zinc-400 hover:text-red-600 sm:opacity-0 sm:group-hover:opacity-100 sm:focus:opacity-100"
            >
              ✕
            </button>
          </li>
        ))}
      </ul>
      <Link href="/cron" className="rounded-lg px-2 py-2 text-sm text-zinc-600 hover:bg-zinc-100 dark:text-zinc-400 dark:hover:bg-zinc-900" data-testid="cron-list-link">
        Scheduled messages
      </Link>
    </nav>
  );
}
