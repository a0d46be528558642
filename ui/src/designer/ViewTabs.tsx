// "Canvas" / "YAML" tabs (WAI-ARIA tabs pattern: arrow keys move between them).

import type { KeyboardEvent } from "react";

export type View = "canvas" | "yaml";
const VIEWS: { view: View; label: string }[] = [{ view: "canvas", label: "Canvas" }, { view: "yaml", label: "YAML" }];

export function ViewTabs({ view, onChange }: { view: View; onChange: (view: View) => void }) {
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const next = view === "canvas" ? "yaml" : "canvas";
    onChange(next);
    document.getElementById(`dg-tab-${next}`)?.focus();
  };
  return (
    <div role="tablist" aria-label="Designer view" className="dg-tabs" onKeyDown={onKeyDown}>
      {VIEWS.map((v) => (
        <button key={v.view} type="button" role="tab" id={`dg-tab-${v.view}`} aria-selected={view === v.view}
          aria-controls={`dg-view-${v.view}`} tabIndex={view === v.view ? 0 : -1} onClick={() => onChange(v.view)}>
          {v.label}
        </button>
      ))}
    </div>
  );
}
