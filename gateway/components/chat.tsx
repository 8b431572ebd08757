"use client";

import Link from "next/link";
import { useCallback, useEffect, useRef, useState } from "react";
import { viewOf } from "@/lib/channels/views";
import { api, sendChat, type ChatMessage, type ConversationSummary } from "@/lib/client-api";
import { Composer } from "./composer";
import { ConversationList } from "./conversation-list";
import { HealthBadge } from "./health-badge";
import { emptyLiveTurn, MessageList, type LiveTurn } from "./message-list";
import { ModelSelect } from "./model-select";
import { useFailure } from "./use-failure";

// The active conversation lives in the URL (?c=<id>) so a refresh reopens it,
// and in the tab's session storage so a trip to the settings comes back to it.
const LAST_KEY = "my-claw:conversation";

function setUrlConversation(id: string | null) {
  window.history.replaceState(null, "", id ? `/?c=${encodeURIComponent(id)}` : "/");
  if (id) sessionStorage.setItem(LAST_KEY, id);
  else sessionStorage.removeItem(LAST_KEY);
}

export function Chat() {
  const [conversations, setConversations] = useState<ConversationSummary[]>([]);
  const [activeId, setActiveId] = useState<string | null>(null);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [model, setModel] = useState("smart");
  const [live, setLive] = useState<LiveTurn | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [isSidebarOpen, setIsSidebarOpen] = useState(false);
  const activeRef = useRef<string | null>(null);

  const fail = useFailure(setError);

  const refreshList = useCallback(async () => {
    const { conversations: list } = await api.conversations();
    setConversations(list);
    return list;
  }, []);

  const open = useCallback(async (id: string | null) => {
    activeRef.current = id;
    setActiveId(id);
    setUrlConversation(id);
    setIsSidebarOpen(false);
    setError(null);
    setLive(null);
    if (!id) {
      setMessages([]);
      return;
    }
    try {
      const { conversation, messages: list } = await api.messages(id);
      if (activeRef.current !== id) return;
      setMessages(list);
      setModel(conversation.model);
    } catch (caught) {
      setMessages([]);
      fail(caught, "Could not load the conversation.");
    }
  }, [fail]);

  useEffect(() => {
    const wanted = new URLSearchParams(window.location.search).get("c") ?? sessionStorage.getItem(LAST_KEY);
    api.conversations().then(
      ({ conversations: list }) => setConversations(list),
      (caught: unknown) => fail(caught, "Could not load the conversations."),
    );
    if (!wanted) return;
    activeRef.current = wanted;
    api.messages(wanted).then(
      ({ conversation, messages: list }) => {
        if (activeRef.current !== wanted) return;
        setUrlConversation(wanted);
        setActiveId(wanted);
        setMessages(list);
        setModel(conversation.model);
      },
      (caught: unknown) => {
        activeRef.current = null;
        setUrlConversation(null);
        fail(caught, "Could not load the conversation.");
      },
    );
  }, [fail]);

  const active = conversations.find((c) => c.id === activeId);
  const isReadOnly = active !== undefined && !viewOf(active.channel).writesHere;
  const isStreaming = live !== null;

  async function send(text: string) {
    setError(null);
    const startedIn = activeRef.current;
    // The conversation this turn belongs to; its events are shown only while it is open.
    let turnConversation = startedIn;
    const pending: ChatMessage = {
      id: `pending-${Date.now()}`,
      role: "user",
      content: text,
      model: null,
      createdAt: new Date().toISOString(),
      turnState: "received",
      turnError: null,
    };
    setMessages((list) => [...list, pending]);
    setLive(emptyLiveTurn);
    const isShown = () => activeRef.current === turnConversation;
    try {
      await sendChat({ message: text, conversationId: startedIn ?? undefined, model }, (event) => {
        if (event.type === "start" && startedIn === null && activeRef.current === null) {
          activeRef.current = event.conversationId;
          turnConversation = event.conversationId;
          setActiveId(event.conversationId);
          setUrlConversation(event.conversationId);
          void refreshList();
        }
        if (!isShown()) return;
        if (event.type === "step") setLive((turn) => ({ ...(turn ?? emptyLiveTurn), step: event.step }));
        else if (event.type === "delta") setLive((turn) => ({ ...(turn ?? emptyLiveTurn), text: (turn?.text ?? "") + event.text }));
        else if (event.type === "approval") setLive((turn) => ({ ...(turn ?? emptyLiveTurn), approval: event.approval }));
        else if (event.type === "thinking")
          setLive((turn) => ({ ...(turn ?? emptyLiveTurn), thinking: (turn?.thinking ?? "") + event.text }));
        else if (event.type === "final") {
          // The live view (thinking included) goes away: only the answer is kept, as the server stored it.
          setLive(null);
          setMessages((list) => [
            ...list.map((m) => (m.id === pending.id ? { ...m, turnState: "delivered" as const } : m)),
            {
              id: `answer-${Date.now()}`,
              role: "assistant",
              content: event.response,
              model: event.model,
              createdAt: new Date().toISOString(),
              turnState: null,
              turnError: null,
              attachments: event.attachments,
            },
          ]);
        } else if (event.type === "error") {
          setLive(null);
          setMessages((list) => list.map((m) => (m.id === pending.id ? { ...m, turnState: "failed", turnError: event.error } : m)));
        }
      });
    } catch (caught) {
      if (isShown()) {
        setMessages((list) => list.filter((m) => m.id !== pending.id));
        fail(caught, "The message could not be sent.");
      }
    } finally {
      if (isShown()) setLive(null);
      void refreshList();
    }
  }

  async function remove(id: string) {
    if (!window.confirm("Delete this conversation and all its messages?")) return;
    try {
      await api.deleteConversation(id);
      if (id === activeRef.current) await open(null);
      await refreshList();
    } catch (caught) {
      fail(caught, "Could not delete the conversation.");
    }
  }

  return (
    <div className="flex h-full">
      <aside
        className={`fixed inset-y-0 left-0 z-20 w-72 border-r border-zinc-200 bg-zinc-50 transition-transform dark:border-zinc-800 dark:bg-zinc-950 md:static md:translate-x-0 ${
          isSidebarOpen ? "translate-x-0" : "-translate-x-full"
        }`}
      >
        <ConversationList conversations={conversations} activeId={activeId} onSelect={open} onNew={() => open(null)} onDelete={remove} />
      </aside>
      {isSidebarOpen && (
        <button type="button" aria-label="Close the list" className="fixed inset-0 z-10 bg-black/30 md:hidden" onClick={() => setIsSidebarOpen(false)} />
      )}
      <main className="flex min-w-0 flex-1 flex-col">
        <header className="flex items-center gap-2 border-b border-zinc-200 px-3 py-2 dark:border-zinc-800">
          <button
            type="button"
            aria-label="Conversations"
            className="rounded p-1 text-xl md:hidden"
            onClick={() => setIsSidebarOpen(true)}
          >
            ☰
          </button>
          <h1 className="min-w-0 flex-1 truncate font-medium">{active?.title ?? (activeId ? "Conversation" : "New conversation")}</h1>
          <ModelSelect value={model} onChange={setModel} disabled={isStreaming || isReadOnly} />
          <HealthBadge />
          {/* On a phone the header has no room: the list (☰) links to it instead. */}
          <Link href="/cron" className="hidden rounded p-1 text-sm text-zinc-600 hover:underline sm:inline dark:text-zinc-400" data-testid="cron-link">
            Schedule
          </Link>
          <Link href="/settings" className="rounded p-1 text-sm text-zinc-600 hover:underline dark:text-zinc-400" data-testid="settings-link">
            Settings
          </Link>
        </header>
        <MessageList messages={messages} live={live} />
        {error && (
          <p role="alert" className="mx-auto w-full max-w-3xl px-3 pb-2 text-sm text-red-600">
            {error}
          </p>
        )}
        <Composer
          onSend={send}
          disabled={isStreaming || isReadOnly}
          placeholder={isReadOnly ? `This conversation happens on ${active?.channel}; reply from there.` : "Message (Enter to send, Shift+Enter for a new line)"}
        />
      </main>
    </div>
  );
}
