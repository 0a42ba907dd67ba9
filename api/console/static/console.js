// wxrelay console: the little the pages do in the browser. Every page
// works without it; it only saves clicks. Loaded under a CSP that allows
// no inline script, so all behaviour is bound here by data attributes.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // A select that filters as soon as it changes.
  for (const el of document.querySelectorAll("select[data-autosubmit]")) {
    el.addEventListener("change", () => el.form.submit());
  }
  // A form that asks before it does something that cannot be undone.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  }
  // Copy a shown-once secret to the clipboard.
  for (const btn of document.querySelectorAll("button[data-copy]")) {
    btn.addEventListener("click", async () => {
      const text = document.getElementById(btn.dataset.copy)?.textContent ?? "";
      try {
        await navigator.clipboard.writeText(text);
        btn.textContent = "Copied";
      } catch {
        btn.textContent = "Select and copy";
      }
    });
  }
});
