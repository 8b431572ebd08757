"use client";

import { useState } from "react";

export function Composer({ onSend, disabled, placeholder }: { onSend: (text: string) => void; disabled: boolean; placeholder: string }) {
  const [text, setText] = useState("");

  function submit() {
    if (disabled || text.trim() === "") return;
    onSend(text);
    setText("");
  }

  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
      className="border-t border-zinc-200 bg-white p-3 pb-[max(0.75rem,env(safe-area-inset-bottom))] dark:border-zinc-800 dark:bg-zinc-950"
    >
      <div className="mx-auto flex max-w-3xl items-end gap-2">
        <textarea
          aria-label="Message"
          data-testid="composer-input"
          rows={1}
          value={text}
          placeholder={placeholder}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
              e.preventDefault();
              submit();
            }
          }}
          className="max-h-40 min-h-10 flex-1 resize-none rounded-xl border border-zinc-300 bg-transparent px-3 py-2 outline-none field-sizing-content focus:border-blue-500 dark:border-zinc-700"
        />
        <button
          type="submit"
          data-testid="composer-send"
          disabled={disabled || text.trim() === ""}
          className="h-10 rounded-xl bg-blue-600 px-4 font-medium text-white disabled:opacity-50"
        >
          Send
        </button>
      </div>
    </form>
  );
}
