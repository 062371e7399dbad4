// FundTrail flow graph: a trace drawn with cytoscape.js. Nodes are addresses coloured by what they are,
// edges are flows sized by the traced value. Click an address for its risk and tags, expand it by one
// hop, export the picture as PNG.
(function () {
  "use strict";
  const { api, coins, escapeHtml } = window.fundtrailApi;

  const KINDS = {
    seed: { color: "#111827", label: "Where the trace starts" },
    exchange: { color: "#1f5fae", label: "Exchange" },
    mixer: { color: "#7b3fa0", label: "Mixer or CoinJoin" },
    gambling: { color: "#d97706", label: "Gambling" },
    illicit: { color: "#b3261e", label: "Criminal (ransomware, scam, darknet)" },
    service: { color: "#0f766e", label: "Other service" },
    unspent: { color: "#16a34a", label: "Funds still there (unspent)" },
    stopped: { color: "#a16207", label: "Trace stopped (busy address, limit)" },
    address: { color: "#9aa5b1", label: "Address on the way" },
  };
  const ILLICIT = ["ransomware", "scam", "darknet", "darkweb", "market", "sanction", "terror", "theft",
                   "hack", "fraud", "extortion", "malware", "phishing"];

  function kindOf(category, reason) {
    const c = (category || "").toLowerCase();
    if (c.includes("exchange")) return "exchange";
    if (c.includes("mix") || c.includes("coinjoin") || c.includes("tumbler")) return "mixer";
    if (c.includes("gambl") || c.includes("casino")) return "gambling";
    if (ILLICIT.some((w) => c.includes(w))) return "illicit";
    if (reason === "coinjoin") return "mixer";
    if (reason === "service" || c) return "service";
    if (reason === "unspent") return "unspent";
    if (reason) return "stopped";
    return "address";
  }

  function short(text) {
    if (!text) return "?";
    return text.length <= 16 ? text : text.slice(0, 8) + "…" + text.slice(-6);
  }

  // The elements of a trace document: one node per address (or CoinJoin transaction), one edge per
  // (from, to) pair with the traced value summed.
  function elementsOf(doc, decimals) {
    const nodes = new Map();
    const edges = new Map();
    const seeds = new Set(doc.seeds || []);
    const node = (id, label, extra) => {
      if (!nodes.has(id)) nodes.set(id, { id, label, kind: "address", ...extra });
      return nodes.get(id);
    };
    for (const flow of doc.flows || []) {
      if (!flow.from || !flow.to || flow.from === flow.to) continue;
      node(flow.from, short(flow.from), { address: flow.from });
      node(flow.to, short(flow.to), { address: flow.to });
      const key = flow.from + ">" + flow.to;
      const edge = edges.get(key) || { id: "e:" + key, source: flow.from, target: flow.to, value: 0n,
                                       hop: flow.hop, asset: flow.asset, txids: new Set() };
      edge.value += BigInt(flow.tainted_value || flow.value || "0");
      edge.hop = Math.min(edge.hop, flow.hop);
      edge.txids.add(flow.txid);
      edges.set(key, edge);
    }
    for (const end of doc.endpoints || []) {
      const id = end.address || ("tx:" + end.txid);
      const n = node(id, short(end.address || end.txid), { address: end.address, txid: end.txid });
      n.kind = kindOf(end.category, end.reason);
      n.entity = end.entity;
      n.category = end.category;
      n.reason = end.reason;
      n.tainted = end.tainted_value;
      if (end.entity) n.label = end.entity + "\n" + short(end.address || end.txid);
      if (!end.address && end.txid) {
        for (const flow of doc.flows || []) {
          if (flow.txid === end.txid && flow.from && !edges.has(flow.from + ">" + id)) {
            node(flow.from, short(flow.from), { address: flow.from });
            edges.set(flow.from + ">" + id, { id: "e:" + flow.from + ">" + id, source: flow.from, target: id,
                                              value: BigInt(end.tainted_value || "0"), hop: end.hops,
                                              asset: end.asset, txids: new Set([end.txid]) });
          }
        }
      }
    }
    for (const seed of seeds) {
      if (seed.includes(":") || /^(0x)?[0-9a-f]{64}$/.test(seed)) continue;  // a transaction, not an address
      node(seed, short(seed), { address: seed }).kind = "seed";
    }
    const out = [];
    for (const n of nodes.values()) {
      out.push({ group: "nodes", data: { ...n, color: KINDS[n.kind].color } });
    }
    for (const e of edges.values()) {
      out.push({ group: "edges", data: { id: e.id, source: e.source, target: e.target, hop: e.hop, width: 2,
                                         value: e.value.toString(), asset: e.asset,
                                         txids: Array.from(e.txids),
                                         label: coins(e.value.toString(), e.asset === "native" ? decimals : 0) } });
    }
    return out;
  }

  function widths(cy) {
    let max = 1;
    cy.edges().forEach((e) => { max = Math.max(max, Number(e.data("value"))); });
    cy.edges().forEach((e) => {
      const v = Number(e.data("value"));
      e.data("width", 1.5 + 10 * Math.log10(1 + v) / Math.log10(1 + max));
    });
  }

  class FlowGraph {
    constructor(options) {
      this.container = options.container;
      this.details = options.details;
      this.status = options.status;
      this.chain = options.chain;
      this.decimals = options.decimals;
      this.symbol = options.symbol;
      this.policy = options.policy || "haircut";
      this.caseId = options.caseId || null;
      this.cy = window.cytoscape({
        container: this.container,
        style: [
          { selector: "node", style: {
              "background-color": "data(color)", "label": "data(label)", "font-size": 10,
              "text-wrap": "wrap", "text-valign": "bottom", "text-margin-y": 4, "color": "#1d2733",
              "width": 22, "height": 22, "border-width": 1, "border-color": "#ffffff" } },
          { selector: "node[kind = 'seed']", style: { "shape": "diamond", "width": 30, "height": 30 } },
          { selector: "node[kind = 'exchange'], node[kind = 'service'], node[kind = 'gambling']",
            style: { "shape": "round-rectangle", "width": 30, "height": 26 } },
          { selector: "node:selected", style: { "border-width": 4, "border-color": "#f59e0b" } },
          { selector: "edge", style: {
              "width": "data(width)", "line-color": "#94a3b8", "target-arrow-color": "#94a3b8",
              "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "data(label)",
              "font-size": 9, "text-rotation": "autorotate", "text-background-color": "#ffffff",
              "text-background-opacity": 0.8, "color": "#475569" } },
        ],
      });
      this.cy.on("tap", "node", (event) => this.select(event.target));
    }

    setStatus(text, kind) {
      if (!this.status) return;
      this.status.className = "notice " + (kind || "info");
      this.status.textContent = text;
      this.status.hidden = !text;
    }

    draw(doc) {
      this.doc = doc;
      this.cy.elements().remove();
      this.cy.add(elementsOf(doc, this.decimals));
      this.layout();
      const ends = (doc.endpoints || []).length;
      this.setStatus(ends ? `Traced ${this.cy.nodes().length} addresses; the funds end at ${ends} places. ` +
                            "Click an address for its risk and tags."
                          : "The trace found no movement of these funds.", ends ? "info" : "error");
    }

    // Columns by hops from the seeds (money flows left to right); within a column, nodes sit near the
    // nodes that paid them, so that arrows cross little.
    layout() {
      widths(this.cy);
      const depth = new Map();
      let frontier = this.cy.nodes("[kind = 'seed']").toArray();
      if (!frontier.length) frontier = this.cy.nodes().roots().toArray();
      frontier.forEach((n) => depth.set(n.id(), 0));
      while (frontier.length) {
        const next = [];
        for (const n of frontier) {
          n.outgoers("node").forEach((m) => {
            if (!depth.has(m.id())) { depth.set(m.id(), depth.get(n.id()) + 1); next.push(m); }
          });
        }
        frontier = next;
      }
      const deepest = Math.max(0, ...depth.values());
      const columns = [];
      this.cy.nodes().forEach((n) => {
        const d = depth.has(n.id()) ? depth.get(n.id()) : deepest + 1;
        (columns[d] = columns[d] || []).push(n);
      });
      const y = new Map();
      const positions = {};
      columns.forEach((column, d) => {
        if (!column) return;
        const key = (n) => {
          const parents = n.incomers("node").filter((p) => y.has(p.id()));
          return parents.length ? parents.reduce((sum, p) => sum + y.get(p.id()), 0) / parents.length : 0;
        };
        column.sort((a, b) => key(a) - key(b) || a.id().localeCompare(b.id()));
        column.forEach((n, i) => {
          y.set(n.id(), i);
          positions[n.id()] = { x: d * 220, y: (i - (column.length - 1) / 2) * 70 };
        });
      });
      this.cy.layout({ name: "preset", positions: (n) => positions[n.id()], fit: true, padding: 30,
                       animate: false }).run();
    }

    // A CoinJoin the trace stopped at is a transaction: link it to the addresses of the graph that paid
    // into it (read from the transaction itself).
    async linkTransactions() {
      const pending = this.cy.nodes().filter((n) => !n.data("address") && n.data("txid") &&
                                                   n.incomers("edge").length === 0);
      for (const node of pending.toArray()) {
        try {
          const tx = await api("GET", `/api/chains/${encodeURIComponent(this.chain)}/transactions/` +
                                      encodeURIComponent(node.data("txid")));
          const payers = (tx.inputs || tx.transfers || [])
            .map((i) => i.address || i.from).filter((a) => a && this.cy.getElementById(a).length);
          for (const address of new Set(payers)) {
            const id = "e:" + address + ">" + node.id();
            if (this.cy.getElementById(id).length) continue;
            this.cy.add({ group: "edges", data: { id, source: address, target: node.id(), hop: 0, width: 2,
                                                  value: String(node.data("tainted") || "0"), asset: "native",
                                                  txids: [node.data("txid")],
                                                  label: coins(node.data("tainted"), this.decimals) } });
          }
        } catch (error) { /* the transaction stays unlinked */ }
      }
      this.layout();
    }

    async run(seeds, maxHops) {
      this.setStatus("Tracing… large traces may take a while.", "info");
      const body = { chain: this.chain, seeds, policy: this.policy, max_hops: maxHops };
      if (this.caseId) body.case = this.caseId;
      try {
        const doc = await api("POST", "/api/traces", body, this.caseId ? "trace for the case" : undefined);
        this.draw(doc);
        await this.linkTransactions();
        return doc;
      } catch (error) {
        this.setStatus("The trace failed: " + error.message, "error");
        throw error;
      }
    }

    async expand(address) {
      this.setStatus("Following the funds one hop further from " + short(address) + "…", "info");
      const body = { chain: this.chain, seeds: [address], policy: this.policy, max_hops: 1 };
      if (this.caseId) body.case = this.caseId;
      try {
        const doc = await api("POST", "/api/traces", body, this.caseId ? "trace for the case" : undefined);
        const before = this.cy.elements().length;
        for (const element of elementsOf(doc, this.decimals)) {
          const existing = this.cy.getElementById(element.data.id);
          if (existing.length) {
            if (element.group === "nodes" && element.data.kind !== "address" && element.data.kind !== "seed"
                && existing.data("kind") === "address") existing.data(element.data);
            continue;
          }
          if (element.group === "nodes" && element.data.kind === "seed") {
            element.data.kind = "address";
            element.data.color = KINDS.address.color;
          }
          this.cy.add(element);
        }
        await this.linkTransactions();
        const added = this.cy.elements().length - before;
        this.setStatus(added ? `Added ${added} nodes and flows.` : "No further movement from this address.",
                       "info");
      } catch (error) {
        this.setStatus("Could not expand: " + error.message, "error");
      }
    }

    async select(node) {
      const data = node.data();
      if (!this.details) return;
      if (!data.address) {
        this.details.innerHTML = `<h3>CoinJoin transaction</h3><p class="mono">${escapeHtml(data.txid)}</p>
          <p class="help">The trace cannot see through a CoinJoin: many people's coins are mixed in it.</p>`;
        return;
      }
      this.details.innerHTML = `<h3>Address</h3><p class="mono">${escapeHtml(data.address)}</p>
        <p class="help">Looking up its risk and tags…</p>`;
      try {
        const doc = await api("GET", `/api/chains/${encodeURIComponent(this.chain)}/addresses/` +
                                     encodeURIComponent(data.address));
        this.details.innerHTML = this.describe(doc, data);
        const expand = this.details.querySelector("[data-expand]");
        if (expand) expand.addEventListener("click", () => this.expand(data.address));
      } catch (error) {
        this.details.innerHTML = `<h3>Address</h3><p class="mono">${escapeHtml(data.address)}</p>
          <div class="notice error">${escapeHtml(error.message)}</div>`;
      }
    }

    describe(doc, data) {
      const risk = doc.risk || { level: "unknown", score: "-", indicators: [] };
      const tags = doc.tags || [];
      const rows = [];
      rows.push(`<dt>Risk</dt><dd><span class="badge ${escapeHtml(risk.level)}" data-risk-level>` +
                `${escapeHtml(risk.level)}</span> (score ${escapeHtml(risk.score)})</dd>`);
      rows.push(`<dt>Balance</dt><dd>${coins(doc.balance, this.decimals, this.symbol)}</dd>`);
      rows.push(`<dt>Received</dt><dd>${coins(doc.received, this.decimals, this.symbol)}</dd>`);
      rows.push(`<dt>Transactions</dt><dd>${escapeHtml(doc.tx_count)}</dd>`);
      if (doc.cluster) rows.push(`<dt>Cluster</dt><dd>${escapeHtml(doc.cluster.size)} addresses</dd>`);
      if (data.tainted) rows.push(`<dt>Traced funds here</dt><dd>${coins(data.tainted, this.decimals,
                                                                          this.symbol)}</dd>`);
      const reasons = (risk.indicators || []).map((i) =>
        `<li><strong>${escapeHtml(i.title)}</strong>: ${escapeHtml(i.summary)}</li>`).join("");
      const tagRows = tags.slice(0, 8).map((t) =>
        `<li data-tag>${escapeHtml(t.entity || t.label || "?")} <span class="help">(${escapeHtml(
          t.category || t.abuse || "no category")}, ${escapeHtml(t.confidence || "unknown confidence")})</span></li>`)
        .join("");
      return `<h3>${escapeHtml(data.entity || "Address")}</h3>
        <p class="mono">${escapeHtml(doc.address)}</p>
        <dl class="facts">${rows.join("")}</dl>
        <h4>Why this risk</h4>${reasons ? `<ul>${reasons}</ul>` : "<p class=\"help\">No risk indicator fired.</p>"}
        <h4>Tags</h4>${tagRows ? `<ul>${tagRows}</ul>` : "<p class=\"help\">No tag names this address.</p>"}
        <div class="toolbar">
          <button type="button" data-expand>Follow one hop further</button>
          <a class="button secondary" href="/address?chain=${encodeURIComponent(this.chain)}&amp;q=${
            encodeURIComponent(doc.address)}">Open address page</a>
        </div>`;
    }

    exportPng() {
      const blob = this.cy.png({ output: "blob", full: true, bg: "#ffffff", scale: 2 });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "fundtrail-trace.png";
      document.body.appendChild(link);
      link.click();
      link.remove();
      return blob;
    }
  }

  function legend(element) {
    element.innerHTML = Object.values(KINDS)
      .map((k) => `<span style="--c: ${k.color}">${escapeHtml(k.label)}</span>`).join("");
  }

  window.FundTrailGraph = { FlowGraph, elementsOf, kindOf, legend, KINDS };
})();
