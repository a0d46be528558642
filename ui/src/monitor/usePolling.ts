// Timers the monitor runs on: a poll loop that pauses while the tab is hidden, and a ticking clock for live
// durations.

import { useEffect, useRef, useState } from "react";

function useVisible(): boolean {
  const [visible, setVisible] = useState(!document.hidden);
  useEffect(() => {
    const update = () => setVisible(!document.hidden);
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
  return visible;
}

/**
 * Calls `tick` now and then every `intervalMs` after the previous call settled (never two at once), while
 * `enabled` and the page is visible; a new `restartKey` starts over at once. The latest `tick` is always used,
 * so it need not be memoised. `tick` handles its own errors; its signal is aborted when the loop stops, so a
 * late answer for an old key can be dropped.
 */
export function usePolling(tick: (signal: AbortSignal) => Promise<unknown> | void, intervalMs: number, enabled: boolean, restartKey: unknown = null): void {
  const visible = useVisible();
  const latest = useRef(tick);
  latest.current = tick;

  useEffect(() => {
    if (!enabled || !visible) return;
    const stop = new AbortController();
    let timer: number | undefined;
    const loop = async () => {
      try {
        await latest.current(stop.signal);
      } finally {
        if (!stop.signal.aborted) timer = window.setTimeout(loop, intervalMs);
      }
    };
    void loop();
    return () => {
      stop.abort();
      window.clearTimeout(timer);
    };
  }, [enabled, visible, intervalMs, restartKey]);
}

/** The current time, re-read every `intervalMs` while `enabled` (for durations of things still running). */
export function useNow(intervalMs: number, enabled: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!enabled) return;
    const timer = window.setInterval(() => setNow(Date.now()), intervalMs);
    return () => window.clearInterval(timer);
  }, [intervalMs, enabled]);
  return now;
}
