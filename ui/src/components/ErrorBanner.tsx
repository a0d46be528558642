import { ApiError } from "../api/client";

/** An API or UI error as a banner: the server's detail and, for invalid documents, each located problem. */
export function ErrorBanner({ error }: { error: unknown }) {
  if (!error) return null;
  const problems = error instanceof ApiError ? error.problems : [];
  const full = error instanceof Error ? error.message : String(error);
  // The server's detail already lists the problems one per line; show them once, as the list below.
  const message = problems.length > 0 ? full.split("\n")[0] : full;
  return (
    <div className="error-banner" role="alert">
      {message}
      {problems.length > 0 && (
        <ul>
          {problems.map((p, i) => <li key={i}><code>{p.location || "document"}</code>: {p.message}</li>)}
        </ul>
      )}
    </div>
  );
}
