// The run being watched: its detail polled every second (ETag, so unchanged polls are a 304), until it has
// ended; `wake` resumes polling after a retry. The DAG document it runs is read once.

import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "../api/client";
import { getRunDag, pollRun } from "../api/endpoints";
import type { RunDetail } from "../api/types";
import { parseDocument, type DagDocument } from "../dag/document";
import { isTerminal } from "./format";
import { usePolling } from "./usePolling";

/** How long polling goes on after a retry while the run still reads as ended (the engine picks it up). */
const WAKE_MS = 15_000;

export function useRun(id: string) {
  const [run, setRun] = useState<RunDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [wokenAt, setWokenAt] = useState<number | null>(null);
  const etag = useRef<string | null>(null);
  const lastBody = useRef("");

  useEffect(() => {
    setRun(null);
    setError(null);
    etag.current = null;
    lastBody.current = "";
  }, [id]);

  const gone = error instanceof ApiError && error.status === 404;
  const enabled = !gone && (!run || !isTerminal(run.state) || wokenAt !== null);

  usePolling(async (signal) => {
    try {
      const answer = await pollRun(id, etag.current);
      if (signal.aborted) return;
      setError(null);
      if (wokenAt !== null && Date.now() - wokenAt > WAKE_MS) setWokenAt(null);
      if (!answer) return;
      etag.current = answer.etag;
      // Without an ETag the whole body comes back each time: keep the old object when nothing changed, so
      // nothing downstream (the graph above all) re-renders.
      const text = JSON.stringify(answer.body);
      if (text === lastBody.current) return;
      lastBody.current = text;
      setRun(answer.body);
      if (!isTerminal(answer.body.state)) setWokenAt(null);
    } catch (failure) {
      if (!signal.aborted) setError(failure);
    }
  }, 1000, enabled, `${id}|${wokenAt}`);

  const wake = useCallback(() => setWokenAt(Date.now()), []);
  return { run, error, wake };
}

export function useRunDocument(id: string) {
  const [document, setDocument] = useState<DagDocument | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    setDocument(null);
    setError(null);
    getRunDag(id).then((text) => live && setDocument(parseDocument(text)), (failure: unknown) => live && setError(failure));
    return () => { live = false; };
  }, [id]);
  return { document, error };
}
