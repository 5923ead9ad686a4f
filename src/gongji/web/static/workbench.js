// Caseworker workbench (个案工作台): mark the fields an htmx error answer names, and the print button.
(function () {
  "use strict";

  // After an htmx form answer, mark the inputs its error summary names (aria-invalid) and focus the first.
  function markErrors(target) {
    const form = target.closest("main") && target.closest("main").querySelector("form[hx-post]");
    if (!form) return;
    form.querySelectorAll("[aria-invalid]").forEach((el) => {
      el.removeAttribute("aria-invalid");
      el.removeAttribute("aria-describedby");
    });
    const box = target.querySelector("[data-error-fields]");
    if (!box) return;
    const fields = box.dataset.errorFields.split(" ").filter(Boolean);
    fields.forEach((name) => {
      const input = form.elements.namedItem(name);
      if (input && input.setAttribute) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", "error-" + name);
      }
    });
    const first = fields.length && form.elements.namedItem(fields[0]);
    if (first && first.focus) first.focus();
  }

  document.addEventListener("htmx:afterSettle", (event) => markErrors(event.detail.target));
  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-print]")) window.print();
  });
})();
