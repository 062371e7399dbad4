// Wires the trace form of a page to a flow graph; `window.fundtrail.graph` is the graph (and `.cy` the
// cytoscape instance) once the page has loaded.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const container = document.getElementById("graph");
    if (!container) return;
    const form = document.getElementById("trace-form");
    const chainSelect = document.getElementById("trace-chain");
    const option = () => chainSelect.options[chainSelect.selectedIndex];
    const graph = new window.FundTrailGraph.FlowGraph({
      container, details: document.getElementById("details"), status: document.getElementById("trace-status"),
      chain: chainSelect.value, decimals: Number(option().dataset.decimals), symbol: option().dataset.symbol,
      caseId: container.dataset.case || null, compare: document.getElementById("trace-compare"),
      legend: document.getElementById("graph-legend"),
    });
    window.FundTrailGraph.legend(document.getElementById("graph-legend"));
    window.fundtrail = { graph, cy: graph.cy };
    const run = async () => {
      graph.chain = chainSelect.value;
      graph.decimals = Number(option().dataset.decimals);
      graph.symbol = option().dataset.symbol;
      graph.policy = document.getElementById("trace-policy").value;
      const seeds = document.getElementById("trace-seeds").value.split(/[\s,]+/).filter((s) => s);
      const hops = Number(document.getElementById("trace-hops").value);
      const button = document.getElementById("trace-run");
      button.disabled = true;
      try { await graph.run(seeds, hops); } catch (e) { /* shown in the status line */ }
      finally { button.disabled = false; }
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
    document.getElementById("export-png").addEventListener("click", () => graph.exportPng());
    document.getElementById("fit-graph").addEventListener("click", () => graph.cy.fit(undefined, 20));
    if (container.dataset.preserved) graph.drawPreserved(JSON.parse(container.dataset.preserved));
    else if (container.dataset.autorun === "1") run();
  });
})();
