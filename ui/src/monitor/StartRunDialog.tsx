// "Start run": every project node parameter as an override input (its current value as placeholder) plus free
// `node.param` rows; only filled-in overrides are sent. A 422 from the server stays in the dialog.

import { useEffect, useState, type FormEvent } from "react";
import { useNavigate } from "react-router-dom";
import { getDag, startRun } from "../api/endpoints";
import { ErrorBanner } from "../components/ErrorBanner";
import { parseDocument, type DagDocument } from "../dag/document";
import { Modal } from "../components/Modal";
import "./monitor.css";

interface ExtraRow { key: string; value: string }

/** Every `node.param` of the document's project nodes with its value in the document. */
function parametersOf(document: DagDocument): { key: string; value: string }[] {
  return document.nodes
    .filter((node) => node.kind === "project")
    .flatMap((node) => Object.entries(node.parameters ?? {}).map(([param, value]) => ({ key: `${node.id}.${param}`, value: String(value) })));
}

export function StartRunDialog(props: { dag: string; version?: number; document?: DagDocument; onClose: () => void }) {
  const { dag, version, onClose } = props;
  const navigate = useNavigate();
  const [document, setDocument] = useState<DagDocument | null>(props.document ?? null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [values, setValues] = useState<Record<string, string>>({});
  const [extra, setExtra] = useState<ExtraRow[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (props.document) return;
    let live = true;
    getDag(dag, version).then(
      (stored) => live && setDocument(parseDocument(stored.yaml)),
      (failure: unknown) => live && setLoadError(failure),
    );
    return () => { live = false; };
  }, [dag, version, props.document]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const overrides: Record<string, string> = {};
    for (const [key, value] of Object.entries(values)) if (value !== "") overrides[key] = value;
    for (const row of extra) if (row.key.trim() !== "" && row.value !== "") overrides[row.key.trim()] = row.value;
    setBusy(true);
    setError(null);
    try {
      const run = await startRun(dag, overrides, version);
      navigate(`/runs/${run.id}`);
    } catch (failure) {
      setError(failure);
      setBusy(false);
    }
  };

  const setRow = (index: number, change: Partial<ExtraRow>) =>
    setExtra((rows) => rows.map((row, i) => (i === index ? { ...row, ...change } : row)));
  const parameters = document ? parametersOf(document) : [];

  return (
    <Modal title={`Start a run of ${dag}`} onClose={onClose} className="start-run">
      <form onSubmit={submit}>
        {version !== undefined && <p className="muted">Version {version}</p>}
        <ErrorBanner error={loadError} />
        {!document && !loadError && <p className="muted">Loading parameters…</p>}
        {document && (
          <fieldset>
            <legend>Parameter overrides <span className="hint">(empty keeps the DAG's value)</span></legend>
            {parameters.length === 0 && <p className="muted">The DAG's project nodes set no parameters.</p>}
            {parameters.map(({ key, value }, i) => (
              <div key={key} className="override">
                <label htmlFor={`override-${key}`}>{key}</label>
                <input id={`override-${key}`} placeholder={value} autoFocus={i === 0} value={values[key] ?? ""}
                  onChange={(e) => setValues((v) => ({ ...v, [key]: e.target.value }))} />
              </div>
            ))}
            {extra.map((row, i) => (
              <div key={i} className="override extra">
                <input aria-label={`Override ${i + 1} key`} placeholder="node.param" value={row.key}
                  onChange={(e) => setRow(i, { key: e.target.value })} />
                <input aria-label={`Override ${i + 1} value`} placeholder="value" value={row.value}
                  onChange={(e) => setRow(i, { value: e.target.value })} />
                <button type="button" onClick={() => setExtra((rows) => rows.filter((_, j) => j !== i))}
                  aria-label={`Remove override ${i + 1}`}>Remove</button>
              </div>
            ))}
            <button type="button" onClick={() => setExtra((rows) => [...rows, { key: "", value: "" }])}>Add override</button>
          </fieldset>
        )}
        <ErrorBanner error={error} />
        <div className="modal-actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" className="primary" disabled={busy}>{busy ? "Starting…" : "Start run"}</button>
        </div>
      </form>
    </Modal>
  );
}
