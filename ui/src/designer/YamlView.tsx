// The document as YAML text. Typing is parsed after a pause; a valid document replaces the current one (the
// canvas follows), a parse error is shown and the last good document stays.

import { useEffect, useState } from "react";
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
