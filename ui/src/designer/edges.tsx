// The canvas edge: a bezier with its label (input · partitioner, and any problem) as a small HTML box that
// wraps, so a long server message stays readable between two ranks instead of running under the nodes.

import { BaseEdge, EdgeLabelRenderer, getBezierPath, type EdgeProps, type EdgeTypes } from "@xyflow/react";
import type { DagFlowEdge } from "./flow";

function DagEdgeView(props: EdgeProps<DagFlowEdge>) {
  const [path, labelX, labelY] = getBezierPath(props);
  const invalid = Boolean(props.data?.problem);
  return (
    <>
      <BaseEdge id={props.id} path={path} markerEnd={props.markerEnd} style={props.style} />
      <EdgeLabelRenderer>
        <div
          className={`dg-edge-label${invalid ? " invalid" : ""}${props.selected ? " selected" : ""}`}
          style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}
        >
          {props.data?.text}
          {invalid && <div className="dg-edge-problem">{props.data?.problem}</div>}
        </div>
      </EdgeLabelRenderer>
    </>
  );
}

export const edgeTypes: EdgeTypes = { dag: DagEdgeView };
