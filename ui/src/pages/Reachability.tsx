import type { ClusterInfo } from "../api/types";

/** A cluster's last check verdict in words and colour, the check's message on hover. */
export function Reachability({ cluster }: { cluster: Pick<ClusterInfo, "reachable" | "check_message"> }) {
  const [word, tone] = cluster.reachable === null ? ["not checked", "unknown"]
    : cluster.reachable ? ["reachable", "yes"] : ["unreachable", "no"];
  return <span className={`reach reach-${tone}`} title={cluster.check_message ?? undefined}>{word}</span>;
}
