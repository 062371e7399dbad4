// The audit trail page of a case: the "Verify the audit log" button checks the whole log through the API.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("verify-audit");
    if (!button) return;
    button.addEventListener("click", async () => {
      const box = document.getElementById("verify-result");
      box.hidden = false; box.className = "notice info"; box.textContent = "Checking every record…";
      try {
        const doc = await window.fundtrailApi.api("GET", "/api/audit/verify");
        box.className = doc.intact ? "notice ok" : "notice error";
        box.textContent = doc.intact ? `Intact: ${doc.records} records, ${doc.checkpoints} signed checkpoints.`
                                     : `Broken at record ${doc.first_bad_record}: ${doc.problem}`;
      } catch (error) { box.className = "notice error"; box.textContent = error.message; }
    });
  });
})();
