// The document as YAML text. Typing is parsed after a pause; a valid document replaces the current one (the
// canvas follows), a parse error is shown and the last good document stays. Leaving the view (the Canvas tab)
// before the pause is over applies what was typed rather than dropping it.

import { useEffect, useRef, useState } from "react";
import { parseDocument, type DagDocument } from "../dag/document";

export function YamlView({ text, onApply }: { text: string; onApply: (dag: DagDocument, text: string) => void }) {
  const [draft, setDraft] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [source, setSource] = useState(text);
  if (source !== text) {
    // The document changed (applied, undone, loaded, saved): show it instead of the old draft.
    setSource(text);
    setDraft(null);
    setError(null);
  }

  // What is typed but not yet applied, and the latest onApply, for the unmount below.
  const pending = useRef<string | null>(null);
  pending.current = draft;
  const apply = useRef(onApply);
  apply.current = onApply;
  useEffect(() => () => {
    const typed = pending.current;
    if (typed === null) return;
    try {
      apply.current(parseDocument(typed), typed);
    } catch {
      // Not a usable document: the last good one stays, as it would have after the pause.
    }
  }, []);

  useEffect(() => {
    if (draft === null) return;
    const timer = setTimeout(() => {
      try {
        onApply(parseDocument(draft), draft);
        setError(null);
      } catch (failure) {
        setError(failure instanceof Error ? failure.message : String(failure));
      }
    }, 500);
    return () => clearTimeout(timer);
  }, [draft, onApply]);

  return (
    <div className="dg-yaml">
      {error && <div className="error-banner" role="alert">The YAML is not a usable DAG document; the canvas keeps the last good one.{"\n"}{error}</div>}
      <textarea
        aria-label="DAG YAML"
        spellCheck={false}
        value={draft ?? text}
        onChange={(e) => setDraft(e.target.value)}
      />
    </div>
  );
}
