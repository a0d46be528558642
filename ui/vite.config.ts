import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Built into the Python package, which serves it at `/` (concurrent server) or `/concurrent/` (inside
// `mlflow server --app-name concurrent`); the server writes the mount point into <base href>, so every
// asset URL is relative.
export default defineConfig({
  base: "./",
  plugins: [react()],
  build: {
    outDir: "../src/concurrent_mlflow/server/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8765" },
  },
});
