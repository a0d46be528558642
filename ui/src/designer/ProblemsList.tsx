// Every problem the server found, each naming its node, edge or document field; a node's or edge's entry
// selects it on the canvas.

import { ErrorBanner } from "../components/ErrorBanner";
import type { ElementProblem } from "../dag/document";
import type { ValidationState } from "./validation";

const STATE_TEXT: Partial<Record<ValidationState, string>> = {
  checking: "Checking…",
  valid: "No problems found.",
};

function where(p: ElementProblem): string {
  const field = p.field ? `.${p.field}` : "";
  if (p.element.kind === "node") return `node ${p.element.id}${field}`;
  if (p.element.kind === "edge") return `edge ${p.element.id}${field}`;
  return p.field || "document";
}

export function ProblemsList({ problems, state, error, onSelect }: {
  problems: ElementProblem[];
  state: ValidationState;
  error: unknown;
  onSelect: (element: ElementProblem["element"]) => void;
}) {
  return (
    <section className="dg-problems" aria-labelledby="dg-problems-title">
      <h2 id="dg-problems-title">Problems {problems.length > 0 && <span className="dg-count">{problems.length}</span>}</h2>
      {state === "failed" && <ErrorBanner error={error} />}
      {STATE_TEXT[state] && problems.length === 0 && <p className="muted">{STATE_TEXT[state]}</p>}
      <ul role="list" aria-label="Problems">
        {problems.map((p, i) => (
          <li key={i}>
            {p.element.kind === "document"
              ? <code>{where(p)}</code>
              : <button type="button" className="dg-link" onClick={() => onSelect(p.element)}>{where(p)}</button>}
            {": "}{p.message}
          </li>
        ))}
      </ul>
    </section>
  );
}
