// "Import YAML": a file chosen here is sent as-is to POST /dags/import (a new DAG, or a new version of an
// existing one); the server checks it and stores nothing when it is invalid.

import { useRef, useState, type ChangeEvent } from "react";
import { useNavigate } from "react-router-dom";
import { importDag } from "../api/endpoints";

export function ImportDag({ onError }: { onError: (error: unknown) => void }) {
  const navigate = useNavigate();
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  const choose = async (event: ChangeEvent<HTMLInputElement>) => {
    const file = event.target.files?.[0];
    if (!file) return;
    setBusy(true);
    onError(null);
    try {
      const stored = await importDag(await file.text());
      navigate(`/dags/${encodeURIComponent(stored.name)}`);
    } catch (failure) {
      onError(failure);
      setBusy(false);
    } finally {
      // Choosing the same (fixed) file again must fire `change` again.
      if (input.current) input.current.value = "";
    }
  };

  return (
    <span className="file-button">
      <input ref={input} id="import-dag" type="file" accept=".yaml,.yml" className="visually-hidden"
        onChange={choose} disabled={busy} />
      <label htmlFor="import-dag" className="button">Import YAML file</label>
      {busy && <span role="status" className="muted"> Importing…</span>}
    </span>
  );
}
