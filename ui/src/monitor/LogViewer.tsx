// A task's log: read once, or followed while the attempt runs (the stream ends with it). Keeps to the bottom
// unless the reader scrolled up; the request is aborted when the viewer closes.

import { useEffect, useRef, useState } from "react";
import { streamText } from "../api/client";
import { taskLogPath } from "../api/endpoints";
import { downloadText } from "../components/download";
import { ErrorBanner } from "../components/ErrorBanner";
import { Modal } from "../components/Modal";
import type { LogTarget } from "./PartitionTable";

/** Pixels from the bottom that still count as "at the bottom" (so following resumes when scrolled back down). */
const BOTTOM_SLACK = 24;

export function LogViewer(props: { runId: string; target: LogTarget; onClose: () => void }) {
  const { runId, target, onClose } = props;
  const { node, partition, follow } = target;
  const [text, setText] = useState("");
  const [phase, setPhase] = useState<"loading" | "following" | "done">("loading");
  const [error, setError] = useState<unknown>(null);
  const pre = useRef<HTMLPreElement>(null);
  const atBottom = useRef(true);
  const path = taskLogPath(runId, node, partition);

  useEffect(() => {
    const abort = new AbortController();
    setText("");
    setError(null);
    setPhase(follow ? "following" : "loading");
    streamText(path, { follow: follow ? "true" : undefined }, (chunk) => setText((old) => old + chunk), abort.signal).then(
      () => setPhase("done"),
      (failure: unknown) => {
        if (abort.signal.aborted) return;
        setError(failure);
        setPhase("done");
      },
    );
    return () => abort.abort();
  }, [path, follow]);

  useEffect(() => {
    if (atBottom.current && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);

  const onScroll = () => {
    const el = pre.current;
    if (el) atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK;
  };

  return (
    <Modal title={`Log of ${node}[${partition}]`} onClose={onClose} className="log-viewer">
      <p className="muted" role="status">
        {phase === "loading" && "Loading…"}
        {phase === "following" && "Following the running attempt…"}
        {phase === "done" && !error && (follow ? "The attempt has ended." : "Latest attempt.")}
      </p>
      <ErrorBanner error={error} />
      {!error && (
        <pre ref={pre} className="log" tabIndex={0} onScroll={onScroll} aria-label={`Output of ${node}[${partition}]`}>
          {text || (phase === "loading" ? "" : "(no output yet)")}
        </pre>
      )}
      <div className="modal-actions">
        {/* From the text already here, not a link to the API: a link would carry no bearer token. */}
        <button type="button" disabled={!text} onClick={() => downloadText(`${node}-${partition}.log`, text, "text/plain")}>Download</button>
        <button type="button" onClick={onClose}>Close</button>
      </div>
    </Modal>
  );
}
