// Shown when the server has auth on and this tab has no (valid) token: tokens come from
// `concurrent token create` on the server's machine.

import { useState, type FormEvent } from "react";
import { ApiError, setToken } from "../api/client";
import { whoami } from "../api/endpoints";
import type { WhoAmI } from "../api/types";
import { ErrorBanner } from "./ErrorBanner";

export function SignIn({ onSignedIn }: { onSignedIn: (who: WhoAmI) => void }) {
  const [token, setValue] = useState("");
  const [error, setError] = useState<unknown>(null);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setToken(token.trim());
    try {
      onSignedIn(await whoami());
    } catch (failure) {
      setToken(null);
      setError(failure instanceof ApiError && failure.status === 401 ? new Error("That token is not valid (or was revoked).") : failure);
    }
  }

  return (
    <div className="page">
      <h1>Sign in</h1>
      <p>This server requires an API token. Create one on the server's machine with <code>concurrent token create NAME</code>.</p>
      <ErrorBanner error={error} />
      <form onSubmit={submit}>
        <label htmlFor="api-token">API token</label>
        <input id="api-token" type="password" autoComplete="current-password" value={token} onChange={(e) => setValue(e.target.value)} required size={60} />
        <p><button className="primary" type="submit">Sign in</button></p>
      </form>
    </div>
  );
}
