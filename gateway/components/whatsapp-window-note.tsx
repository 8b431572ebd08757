/** Meta's 24-hour customer service window, which every scheduled WhatsApp message runs into. */
export function WhatsAppWindowNote() {
  return (
    <p className="rounded-lg border border-amber-300 bg-amber-50 px-3 py-2 text-xs text-amber-900 dark:border-amber-800 dark:bg-amber-950 dark:text-amber-200">
      WhatsApp only delivers free-form messages within 24 hours of your last message to the bot. Later, Meta refuses them (error
      131047) and the run is marked failed: write to the bot at least once a day to keep the window open.
    </p>
  );
}
