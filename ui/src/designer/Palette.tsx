// Node palette: each item is a button (press to add the node at a free spot) that can also be dragged onto
// the canvas to place it where it is dropped.

import type { NodeKind } from "../dag/document";

export const NODE_MIME = "application/x-concurrent-node";

const ITEMS: { kind: NodeKind; title: string; hint: string }[] = [
  { kind: "source", title: "Source", hint: "Data: a directory, bucket prefix or MLflow artifacts" },
  { kind: "project", title: "Project", hint: "Runs an MLproject entry point per partition" },
  { kind: "inference", title: "Inference", hint: "Batch-scores an MLflow model" },
];

export function Palette({ onAdd, disabled }: { onAdd: (kind: NodeKind) => void; disabled?: boolean }) {
  return (
    <aside className="dg-palette" aria-labelledby="dg-palette-title">
      <h2 id="dg-palette-title">Nodes</h2>
      {ITEMS.map((item) => (
        <button
          key={item.kind}
          type="button"
          className={`dg-palette-item dg-kind-${item.kind}`}
          aria-label={`Add ${item.kind} node`}
          draggable={!disabled}
          disabled={disabled}
          onDragStart={(event) => {
            event.dataTransfer.setData(NODE_MIME, item.kind);
            event.dataTransfer.effectAllowed = "copy";
          }}
          onClick={() => onAdd(item.kind)}
        >
          <strong>{item.title}</strong>
          <span>{item.hint}</span>
        </button>
      ))}
      <p className="muted dg-palette-help">Drag onto the canvas, or press to add. Connect a node's right handle to another's left handle.</p>
    </aside>
  );
}
