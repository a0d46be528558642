// Server-side validation of the document as it changes (debounced) or on demand. Responses that arrive after
// a newer request are dropped. A server without the endpoint (404/405) simply shows no validation.

import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "../api/client";
import { validateDag } from "../api/endpoints";
import type { ProblemLocation } from "../api/types";
import { locateProblem, serializeDocument, type DagDocument, type ElementProblem } from "../dag/document";

const DEBOUNCE_MS = 600;

export type ValidationState = "idle" | "checking" | "valid" | "invalid" | "unavailable" | "failed";

export function useValidation(dag: DagDocument, auto: boolean) {
  const [problems, setProblems] = useState<ElementProblem[]>([]);
  const [state, setState] = useState<ValidationState>("idle");
  const [error, setError] = useState<unknown>(null);
  const latest = useRef(0);

  /** Shows problems the server reported for `target` (validation or a refused save). */
  const show = useCallback((found: ProblemLocation[], target: DagDocument) => {
    latest.current += 1;
    setProblems(found.map((p) => locateProblem(p.location, p.message, target)));
    setState(found.length ? "invalid" : "valid");
    setError(null);
  }, []);

  const validate = useCallback(async (target: DagDocument) => {
    const request = ++latest.current;
    setState((s) => (s === "unavailable" ? s : "checking"));
    try {
      const result = await validateDag(serializeDocument(target));
      if (request === latest.current) show(result.errors, target);
    } catch (failure) {
      if (request !== latest.current) return;
      if (failure instanceof ApiError && (failure.status === 404 || failure.status === 405)) {
        setState("unavailable");
      } else if (failure instanceof ApiError && failure.problems.length) {
        show(failure.problems, target);
      } else {
        setState("failed");
        setError(failure);
      }
    }
  }, [show]);

  useEffect(() => {
    if (!auto) return;
    const timer = setTimeout(() => void validate(dag), DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [dag, auto, validate]);

  const clear = useCallback(() => {
    latest.current += 1;
    setProblems([]);
    setState("idle");
    setError(null);
  }, []);

  return { problems, state, error, validate, show, clear };
}
