/** A 422's message next to the field it names; nothing when there is none. */
export function FieldError({ field, message, id }: { field: string; message: string | undefined; id?: string }) {
  if (!message) return null;
  return (
    <p class="field-error" id={id} data-field={field}>
      {message}
    </p>
  );
}
