/** Previous/next page buttons and "51–100 of 230"; nothing when everything fits on one page. */
export function Pager({ offset, limit, total, shown, onChange }: {
  offset: number;
  limit: number;
  total: number;
  shown: number;
  onChange: (offset: number) => void;
}) {
  if (total <= limit) return null;
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" onClick={() => onChange(Math.max(0, offset - limit))} disabled={offset === 0}>
        Previous page
      </button>
      <span>{shown ? `${offset + 1}–${offset + shown}` : "none"} of {total}</span>
      <button type="button" onClick={() => onChange(offset + limit)} disabled={offset + limit >= total}>
        Next page
      </button>
    </nav>
  );
}
