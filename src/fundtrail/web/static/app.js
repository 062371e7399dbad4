// FundTrail dashboard: calls to the service's API with the session cookie, and the actions on pages.
(function () {
  "use strict";

  // Call the API as the signed-in user. A 202 answer (long analysis) is polled until it is done.
  async function api(method, url, body, reason) {
    const headers = { "Accept": "application/json", "X-Requested-With": "fundtrail" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (reason) headers["X-Reason"] = reason;
    const response = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let doc = null;
    try { doc = await response.json(); } catch (e) { doc = null; }
    if (response.status === 202 && doc && doc.location) {
      return await poll(doc.location);
    }
    if (!response.ok) {
      const detail = doc && (doc.detail || doc.title) ? (doc.detail || doc.title) : response.statusText;
      const error = new Error(detail);
      error.status = response.status;
      error.problem = doc;
      throw error;
    }
    return doc;
  }

  async function poll(location) {
    for (let i = 0; i < 600; i++) {
      await new Promise((resolve) => setTimeout(resolve, i < 10 ? 300 : 1000));
      const job = await api("GET", location);
      if (job.status === "done") return job.result;
      if (job.status === "failed") {
        const error = new Error(job.problem ? job.problem.detail : "the analysis failed");
        error.problem = job.problem;
        throw error;
      }
    }
    throw new Error("the analysis is taking too long; try again later");
  }

  // Amounts are strings of base units; show them in coins with the chain's decimals.
  function coins(value, decimals, symbol) {
    if (value === null || value === undefined) return "-";
    let text = String(value);
    const negative = text.startsWith("-");
    if (negative) text = text.slice(1);
    if (!decimals) return (negative ? "-" : "") + Number(text).toLocaleString("en") + (symbol ? " " + symbol : "");
    text = text.padStart(decimals + 1, "0");
    const whole = text.slice(0, text.length - decimals);
    const frac = text.slice(text.length - decimals).replace(/0+$/, "");
    const wholeText = BigInt(whole).toLocaleString("en");
    return (negative ? "-" : "") + wholeText + (frac ? "." + frac : "") + (symbol ? " " + symbol : "");
  }

  function escapeHtml(text) {
    return String(text === null || text === undefined ? "" : text)
      .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  // Buttons with data-action post a request transition (or another change) after asking for the reason.
  function wireActions(root) {
    root.querySelectorAll("[data-action-url]").forEach((button) => {
      button.addEventListener("click", async () => {
        const status = document.getElementById(button.dataset.status || "action-status");
        const input = button.dataset.reasonInput ? document.getElementById(button.dataset.reasonInput) : null;
        const reason = input ? input.value
          : window.prompt(button.dataset.question || "Why? (kept in the audit log)", "");
        if (reason === null) return;
        if (!reason.trim()) {
          const text = "Please write the reason for this action first: it is kept in the audit log.";
          if (status) { status.hidden = false; status.className = "notice error"; status.textContent = text; }
          else window.alert(text);
          if (input) input.focus();
          return;
        }
        button.disabled = true;
        try {
          await api("POST", button.dataset.actionUrl, JSON.parse(button.dataset.body || "{}"), reason.trim());
          if (status) { status.hidden = false; status.className = "notice ok";
                        status.textContent = button.dataset.done || "Done."; }
          window.setTimeout(() => window.location.reload(), 400);
        } catch (error) {
          button.disabled = false;
          if (status) { status.hidden = false; status.className = "notice error"; status.textContent = error.message; }
          else window.alert(error.message);
        }
      });
    });
  }

  // Forms with data-api-form post their fields as JSON to that URL, with the reason, then reload.
  function wireForms(root) {
    root.querySelectorAll("form[data-api-form]").forEach((form) => {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const status = document.getElementById(form.dataset.status || "action-status");
        const input = form.dataset.reasonInput ? document.getElementById(form.dataset.reasonInput) : null;
        const reason = input ? input.value.trim() : "";
        const show = (kind, text) => { if (status) { status.hidden = false; status.className = "notice " + kind;
                                                     status.textContent = text; } else window.alert(text); };
        if (!reason) { show("error", "Please write the reason for this action first: it is kept in the audit log.");
                       if (input) input.focus(); return; }
        const body = {};
        new FormData(form).forEach((value, key) => { if (String(value).trim()) body[key] = String(value).trim(); });
        try {
          await api("POST", form.dataset.apiForm, body, reason);
          show("ok", "Saved.");
          window.setTimeout(() => window.location.reload(), 400);
        } catch (error) { show("error", error.message); }
      });
    });
  }

  // Selects with data-autosubmit send their form as soon as a choice is made (the case list's filter).
  function wireAutosubmit(root) {
    root.querySelectorAll("select[data-autosubmit]").forEach((select) => {
      select.addEventListener("change", () => select.form.submit());
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    wireActions(document); wireForms(document); wireAutosubmit(document);
  });
  window.fundtrailApi = { api, coins, escapeHtml, wireActions, wireForms };
})();
