/* The form editor's live preview: htmx swaps the preview in, also when the server answers 422
 * (a JSON or JSON Schema error to show in place of the form). */
document.addEventListener('htmx:beforeSwap', function (event) {
  if (event.detail.xhr.status === 422 && event.detail.target.id === 'form-preview') {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
