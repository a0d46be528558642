// The designer's actions. Undo/redo and delete also have keyboard shortcuts (Ctrl+Z, Ctrl+Shift+Z or Ctrl+Y,
// Delete/Backspace); the buttons are the discoverable, always-reachable way.

export interface ToolbarProps {
  onSave: () => void;
  saving: boolean;
  onRun: () => void;
  canRun: boolean;
  onValidate: () => void;
  onUndo: () => void;
  canUndo: boolean;
  onRedo: () => void;
  canRedo: boolean;
  onDelete: () => void;
  canDelete: boolean;
  onLayout: () => void;
  dirty: boolean;
  status: string;
}

export function Toolbar(p: ToolbarProps) {
  return (
    <div className="toolbar dg-toolbar">
      <button type="button" className="primary" onClick={p.onSave} disabled={p.saving}>Save</button>
      <button type="button" onClick={p.onRun} disabled={!p.canRun}
        title={p.canRun ? "Start a run of the saved DAG" : "Save the DAG to run it"}>Run</button>
      <button type="button" onClick={p.onValidate}>Validate</button>
      <span className="dg-separator" aria-hidden="true" />
      <button type="button" onClick={p.onUndo} disabled={!p.canUndo} title="Ctrl+Z">Undo</button>
      <button type="button" onClick={p.onRedo} disabled={!p.canRedo} title="Ctrl+Shift+Z">Redo</button>
      <button type="button" onClick={p.onDelete} disabled={!p.canDelete} title="Delete or Backspace">Delete selected</button>
      <button type="button" onClick={p.onLayout}>Auto-layout</button>
      {p.dirty && <span className="dg-unsaved">● unsaved changes</span>}
      <span role="status" className="dg-status">{p.status}</span>
    </div>
  );
}
