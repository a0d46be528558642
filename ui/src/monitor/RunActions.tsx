// "Cancel run" (while it is going, after a confirmation) and "Retry failed" (once it ended failed or
// cancelled); the server's answer is read out in a status area.

import { useState } from "react";
import { cancelRun, retryRun } from "../api/endpoints";
import type { RunDetail } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { isTerminal, shortId } from "./format";
import { Modal } from "../components/Modal";

export function RunActions(props: { run: RunDetail; onRetried: () => void }) {
  const { run, onRetried } = props;
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [answer, setAnswer] = useState("");
  const [error, setError] = useState<unknown>(null);

  const act = async (action: () => Promise<string>) => {
    setBusy(true);
    setError(null);
    setAnswer("");
    try {
      setAnswer(await action());
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const cancel = () => {
    setConfirming(false);
    void act(async () => `Cancel requested: ${(await cancelRun(run.id)).detail}.`);
  };
  const retry = () => act(async () => {
    const result = await retryRun(run.id);
    onRetried();
    return `Retry started: ${result.reset_tasks} task${result.reset_tasks === 1 ? "" : "s"} sent back to pending.`;
  });

  return (
    <div className="run-actions">
      {!isTerminal(run.state) && (
        <button type="button" className="danger" disabled={busy || !!run.cancel_requested} onClick={() => setConfirming(true)}>
          Cancel run
        </button>
      )}
      {(run.state === "failed" || run.state === "cancelled") && (
        <button type="button" className="primary" disabled={busy} onClick={retry}>Retry failed</button>
      )}
      <span role="status" className="muted">{answer || (run.cancel_requested && !isTerminal(run.state) ? `Cancelling: ${run.cancel_requested}` : "")}</span>
      <ErrorBanner error={error} />
      {confirming && (
        <Modal title={`Cancel run ${shortId(run.id)}?`} onClose={() => setConfirming(false)} className="confirm">
          <p>Running tasks of <strong>{run.dag}</strong> are stopped and pending ones never start. "Retry failed" can resume it later.</p>
          <div className="modal-actions">
            <button type="button" onClick={() => setConfirming(false)}>Keep running</button>
            <button type="button" className="danger" onClick={cancel}>Yes, cancel run</button>
          </div>
        </Modal>
      )}
    </div>
  );
}
