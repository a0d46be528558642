// Duplicate a DAG: its newest document under a new name, saved as version 1 of a new DAG, then opened in
// the designer.

import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router-dom";
import { createDag, getDag } from "../api/endpoints";
import { ErrorBanner } from "../components/ErrorBanner";
import { parseDocument, serializeDocument } from "../dag/document";
import { Modal } from "../components/Modal";

export function DuplicateDialog({ dag, onClose }: { dag: string; onClose: () => void }) {
  const navigate = useNavigate();
  const [name, setName] = useState(`${dag}-copy`);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const newest = await getDag(dag);
      const document = parseDocument(newest.yaml);
      const copy = await createDag(serializeDocument({ ...document, name: name.trim() }));
      navigate(`/dags/${encodeURIComponent(copy.name)}`);
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  return (
    <Modal title={`Duplicate ${dag}`} onClose={onClose} className="page-dialog">
      <form onSubmit={submit}>
        <label htmlFor="duplicate-name">New DAG name</label>
        <input id="duplicate-name" value={name} onFocus={(e) => e.target.select()} onChange={(e) => setName(e.target.value)} required maxLength={100} />
        <ErrorBanner error={error} />
        <div className="modal-actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" className="primary" disabled={busy || !name.trim()} aria-busy={busy}>Duplicate</button>
        </div>
      </form>
    </Modal>
  );
}
