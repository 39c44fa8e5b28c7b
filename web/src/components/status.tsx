/** A task or generation status as a coloured badge; the colour is never the only signal, the word is there. */
export function StatusBadge({ status, id }: { status: string; id?: string }) {
  return (
    <span id={id} class={`badge status-${status.toLowerCase()}`}>
      {status}
    </span>
  );
}

export function Progress({ value, id }: { value: number; id?: string }) {
  return (
    <progress id={id} max={100} value={value} aria-label={`${value.toFixed(0)}% done`}>
      {value.toFixed(0)}%
    </progress>
  );
}
