import { Link } from "react-router-dom";
import { StateBadge } from "../components/StateBadge";

/** A run's state as a link to its monitor, or "never run". */
export function LastRun({ id, state }: { id: string | null; state: string | null }) {
  if (!id) return <StateBadge state={null} />;
  return (
    <Link to={`/runs/${encodeURIComponent(id)}`} className="badge-link" title={`Run ${id}`}>
      <StateBadge state={state ?? "pending"} />
    </Link>
  );
}
