/** Saves text as a file in the browser through a temporary Blob link. */
export function downloadText(filename: string, text: string, type = "application/yaml"): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  // The click has started the download by the time the event loop comes back; the URL may go then.
  window.setTimeout(() => URL.revokeObjectURL(url), 0);
}
