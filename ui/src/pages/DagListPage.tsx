// `/`: the stored DAGs, searchable and paged, with run / duplicate / export / delete per row, and the
// ways to make a new one (designer or YAML import).

import { useEffect, useState } from "react";
import { Link } from "react-router-dom";
import { deleteDag, exportDag, listDags } from "../api/endpoints";
import type { DagSummary, Page } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { StartRunDialog } from "../monitor/StartRunDialog";
import { ConfirmDialog } from "./ConfirmDialog";
import { DagTable, type DagAction } from "./DagTable";
import { downloadText } from "../components/download";
import { DuplicateDialog } from "./DuplicateDialog";
import { ImportDag } from "./ImportDag";
import { Pager } from "./Pager";
import { useDebounced } from "./useDebounced";
import "./pages.css";

const PAGE_SIZE = 50;

export function DagListPage() {
  const [search, setSearch] = useState("");
  const query = useDebounced(search.trim());
  // The offset belongs to one query: a new search starts again at the first page.
  const [paging, setPaging] = useState({ query: "", offset: 0 });
  const offset = paging.query === query ? paging.offset : 0;
  const [page, setPage] = useState<Page<DagSummary> | null>(null);
  const [loading, setLoading] = useState(true);
  const [listError, setListError] = useState<unknown>(null);
  const [actionError, setActionError] = useState<unknown>(null);
  const [reloads, setReloads] = useState(0);
  const [dialog, setDialog] = useState<{ action: Exclude<DagAction, "export">; dag: DagSummary } | null>(null);

  useEffect(() => {
    let current = true; // a slower, older answer must not overwrite a newer one
    setLoading(true);
    listDags(query || undefined, offset, PAGE_SIZE)
      .then((result) => {
        if (!current) return;
        // Deleting the last DAG of the last page: show the page before it.
        if (result.items.length === 0 && offset > 0) setPaging({ query, offset: Math.max(0, offset - PAGE_SIZE) });
        setPage(result);
        setListError(null);
      }, (failure) => current && setListError(failure))
      .finally(() => current && setLoading(false));
    return () => { current = false; };
  }, [query, offset, reloads]);

  const act = (action: DagAction, dag: DagSummary) => {
    setActionError(null);
    if (action !== "export") return setDialog({ action, dag });
    exportDag(dag.name, dag.latest_version).then(
      (yaml) => downloadText(`${dag.name}-v${dag.latest_version}.yaml`, yaml),
      setActionError,
    );
  };
  const remove = async (name: string) => {
    await deleteDag(name);
    setReloads((n) => n + 1);
  };

  return (
    <div className="page">
      <h1>DAGs</h1>
      <div className="toolbar">
        <Link to="/dags/new" className="button primary">New DAG</Link>
        <ImportDag onError={setActionError} />
        <span className="toolbar-gap" />
        <label htmlFor="dag-search" className="inline-label">Search DAGs</label>
        <input id="dag-search" type="search" value={search} onChange={(e) => setSearch(e.target.value)}
          placeholder="Name or description" maxLength={100} />
      </div>
      <ErrorBanner error={actionError} />
      <ErrorBanner error={listError} />
      {!page && loading && <p role="status" className="muted">Loading DAGs…</p>}
      {page && page.total === 0 && (
        <p className="empty">
          {query ? `No DAGs match “${query}”.` : "No DAGs yet — create one or import a YAML file"}
        </p>
      )}
      {page && page.items.length > 0 && (
        <div aria-busy={loading}>
          <DagTable dags={page.items} onAction={act} />
          <Pager offset={offset} limit={PAGE_SIZE} total={page.total} shown={page.items.length}
            onChange={(next) => setPaging({ query, offset: next })} />
        </div>
      )}
      {dialog?.action === "run" && (
        <StartRunDialog dag={dialog.dag.name} version={dialog.dag.latest_version} onClose={() => setDialog(null)} />
      )}
      {dialog?.action === "duplicate" && <DuplicateDialog dag={dialog.dag.name} onClose={() => setDialog(null)} />}
      {dialog?.action === "delete" && (
        <ConfirmDialog
          title="Delete DAG"
          message={`Delete ${dialog.dag.name} and all its versions and schedules?`}
          confirmLabel="Delete"
          onConfirm={() => remove(dialog.dag.name)}
          onClose={() => setDialog(null)}
        />
      )}
    </div>
  );
}
