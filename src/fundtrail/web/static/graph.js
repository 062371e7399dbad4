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
  // The colour of each chain (nodes are ringed in it); mirrors fundtrail.analysis.flowgraph.CHAIN_COLORS.
  const CHAIN_COLORS = {
    btc: "#f7931a", eth: "#627eea", bsc: "#d4a20b", polygon: "#8247e5", arb: "#28a0f0",
    arbitrum: "#28a0f0", optimism: "#ff0420", base: "#0052ff", trx: "#c4161c", ltc: "#345d9d",
    bch: "#0ac18e", doge: "#b59a30", avax: "#e84142",
  };
  const OTHER_CHAIN_COLOR = "#64748b";
  const chainColor = (chain) => CHAIN_COLORS[chain || ""] || OTHER_CHAIN_COLOR;
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

  const amount = (value) => { try { return BigInt(value || "0"); } catch (e) { return 0n; } };

  // The senders of a flow with the part of its traced value each brought: every input address of a
  // multi-input flow (in proportion to the traced value it brought in; the rounding rest goes to `from`),
  // else `from` with all of it. Mirrors fundtrail.analysis.flowgraph.input_shares.
  function inputShares(flow) {
    const total = amount(flow.tainted_value || flow.value);
    const inputs = (flow.inputs || []).filter((i) => i && i.address);
    if (!inputs.length) return flow.from ? [[flow.from, total]] : [];
    const brought = inputs.map((i) => amount(i.tainted_value));
    const whole = brought.reduce((a, b) => a + b, 0n);
    const shares = brought.map((b) => (whole ? total * b / whole : 0n));
    const rest = total - shares.reduce((a, b) => a + b, 0n);
    if (rest) {
      let first = inputs.findIndex((i) => i.address === flow.from);
      if (first < 0) first = brought.indexOf(brought.reduce((a, b) => (b > a ? b : a)));
      shares[first] += rest;
    }
    const merged = new Map();
    inputs.forEach((i, k) => merged.set(i.address, (merged.get(i.address) || 0n) + shares[k]));
    return Array.from(merged.entries());
  }

  // The graph of a trace document: one node per address (or CoinJoin transaction), one edge per
  // (sender, receiver) pair with the traced value summed; every input of a multi-input flow is a sender.
  // Every node names its chain and the sanctions lists naming it; a followed conversion is its own edge
  // (`conversion`: kind, rule, confidence ...), except a pool's candidate withdrawals, listed under the
  // pool node's `candidates` to be added one by one.
  // Mirrors fundtrail.analysis.flowgraph.flow_graph, which builds the graph of a case's preserved trace.
  function graphOf(doc) {
    const nodes = new Map();
    const edges = new Map();
    const home = doc.chain ? String(doc.chain) : null;
    const node = (id, address, txid, chain) => {
      if (!nodes.has(id)) {
        nodes.set(id, { id, address: address || null, txid: txid || null, seed: false, entity: null,
                        category: null, reason: null, asset: null, tainted: null, hops: null,
                        chain: chain || home, sanctions_lists: [] });
      }
      return nodes.get(id);
    };
    const listed = (n, names) => {
      for (const name of names) if (!n.sanctions_lists.includes(String(name))) n.sanctions_lists.push(String(name));
    };
    const edge = (source, target, asset, value, hop, txid) => {
      const key = source + ">" + target;
      const e = edges.get(key) || { id: "e:" + key, source, target, asset, value: 0n, hop, txids: [] };
      e.value += value;
      e.hop = Math.min(e.hop, hop);
      if (txid && !e.txids.includes(txid)) e.txids.push(txid);
      edges.set(key, e);
    };
    const flows = doc.flows || [];
    for (const flow of flows) {
      if (!flow.to) continue;
      for (const [sender, share] of inputShares(flow)) {
        if (sender === flow.to) continue;
        node(sender, sender, null, flow.chain);
        node(flow.to, flow.to, null, flow.chain);
        edge(sender, flow.to, flow.asset || "native", share, flow.hop || 0, flow.txid);
      }
      for (const hit of flow.sanctions || []) {
        if (hit && nodes.has(String(hit.address))) listed(nodes.get(String(hit.address)), [hit.list]);
      }
    }
    for (const end of doc.endpoints || []) {
      if (!end.address && !end.txid) continue;
      const n = node(end.address || ("tx:" + end.txid), end.address, end.txid, end.chain);
      listed(n, end.sanctions_lists || []);
      Object.assign(n, { entity: end.entity, category: end.category, reason: end.reason, asset: end.asset,
                         hops: end.hops });
      n.tainted = amount(n.tainted) + amount(end.tainted_value);
      if (!end.address) {
        for (const flow of flows) {
          if (flow.txid === end.txid && flow.from && !edges.has(flow.from + ">" + n.id)) {
            node(flow.from, flow.from);
            edge(flow.from, n.id, end.asset || "native", amount(end.tainted_value), end.hops || 0, end.txid);
          }
        }
      }
    }
    const conversionEdges = [];
    const opt = (v) => (v === undefined ? null : v);
    for (const c of doc.conversions || []) {
      if (!c || !c.in || !c.out) continue;
      const source = node(String(c.in.address), String(c.in.address), null, c.in.chain);
      const conversion = { kind: opt(c.kind), rule: opt(c.rule), confidence: opt(c.confidence),
                           candidates: opt(c.candidates), anonymity_set: opt(c.anonymity_set),
                           in_chain: opt(c.in.chain), out_chain: opt(c.out.chain) };
      const target = String(c.out.address);
      const txids = [String(c.in.txid), String(c.out.txid)];
      const e = { id: `c:${txids[0]}>${txids[1]}>${target}`, source: source.id, target,
                  asset: c.out.asset || "native", value: amount(c.tainted_out).toString(), hop: c.hop || 0, txids,
                  conversion };
      if (c.kind === "pool") {
        source.candidates = source.candidates || [];
        source.candidates.push({ ...e, chain: opt(c.out.chain) });
      } else {
        node(target, target, null, c.out.chain);
        conversionEdges.push(e);
      }
    }
    for (const seed of doc.seeds || []) {
      if (seed.includes(":") || /^(0x)?[0-9a-f]{64}$/.test(seed)) continue;  // a transaction, not an address
      node(seed, seed).seed = true;
    }
    const str = (v) => (v === null || v === undefined ? null : v.toString());
    const chains = {};
    Array.from(nodes.values(), (n) => n.chain).filter((c) => c).sort()
      .forEach((c) => { chains[c] = chainColor(c); });
    return { nodes: Array.from(nodes.values(), (n) => ({ ...n, tainted: str(n.tainted),
                                                        sanctions_lists: [...n.sanctions_lists].sort() })),
             edges: Array.from(edges.values(), (e) => ({ ...e, value: e.value.toString() }))
               .concat(conversionEdges),
             chains };
  }

  // Cytoscape elements of a graph (of graphOf, or of the server for a preserved trace): kinds, colours,
  // labels. An edge from an input that brought no traced value is drawn dashed, without an amount.
  // Nodes are filled by what they are and ringed in their chain's colour; a sanctioned address is an
  // octagon named SANCTIONED; a pool with candidate withdrawals a hexagon; a conversion edge is dashed and
  // labelled with its kind, rule and confidence.
  function nodeElement(n) {
    const kind = n.seed ? "seed" : (n.reason || n.category) ? kindOf(n.category, n.reason) : "address";
    const name = short(n.address || n.txid);
    const lists = n.sanctions_lists || [];
    let label = n.entity ? n.entity + "\n" + name : name;
    if (lists.length) label = "SANCTIONED (" + lists.join(", ") + ")\n" + label;
    return { group: "nodes", data: { id: n.id, address: n.address, txid: n.txid, kind, entity: n.entity,
                                     category: n.category, reason: n.reason, tainted: n.tainted, label,
                                     color: KINDS[kind].color, chain: n.chain || null,
                                     chainColor: chainColor(n.chain), sanctioned: lists.length > 0,
                                     sanctions_lists: lists, candidates: n.candidates || [],
                                     pool: (n.candidates || []).length > 0 } };
  }

  function conversionLabel(c) {
    return `${c.kind} ${c.rule} (${Number(c.confidence).toFixed(2)})` +
      (c.in_chain !== c.out_chain ? ` ${c.in_chain}→${c.out_chain}` : "");
  }

  function edgeElement(e, decimals) {
    const untraced = amount(e.value) === 0n;
    const value = untraced ? "" : coins(String(e.value), e.asset === "native" ? decimals : 0);
    const data = { id: e.id, source: e.source, target: e.target, hop: e.hop, width: 2, value: String(e.value),
                   asset: e.asset, txids: e.txids || [], untraced, label: value };
    if (e.conversion) {
      data.conversion = conversionLabel(e.conversion);
      data.label = data.conversion + (value ? "\n" + value : "");
    }
    return { group: "edges", data };
  }

  function elementsOfGraph(graph, decimals) {
    const out = [];
    for (const n of graph.nodes || []) out.push(nodeElement(n));
    for (const e of graph.edges || []) out.push(edgeElement(e, decimals));
    return out;
  }

  function elementsOf(doc, decimals) {
    return elementsOfGraph(graphOf(doc), decimals);
  }

  // Why a trace the investigator runs differs from the case's preserved trace: its owner hops against
  // the preserved trace's, with the traced value that lies beyond the smaller limit; its policy; its
  // seeds. `preserved` is the page's data-preserved (see fundtrail.analysis.flowgraph.hop_profile).
  function hopNote(preserved, run, decimals, symbol) {
    if (!preserved || !preserved.graph) return "";
    const name = `the preserved trace (${preserved.evidence})`;
    const same = (a, b) => a.length === b.length && a.every((x) => b.includes(x));
    if (run.chain !== preserved.chain || !same(run.seeds, preserved.seeds)) {
      return `This graph starts from other addresses than ${name}: its amounts are not those of the case.`;
    }
    const profile = preserved.profile || { beyond: {}, at_limit: {}, deepest: 0 };
    const money = (values) => Object.entries(values).filter(([, v]) => amount(v) > 0n)
      .map(([asset, v]) => (asset === "native" ? coins(v, decimals, symbol) : `${coins(v, 0)} of ${asset}`))
      .join(" and ");
    const hopWord = (n) => `${n} owner hop${n === 1 ? "" : "s"}`;
    const parts = [];
    const limit = Number(preserved.max_hops);
    if (run.hops !== limit) {
      let text = `This graph: ${hopWord(run.hops)}; ${name}: ${hopWord(limit)}; `;
      if (run.hops < limit) {
        const beyond = {};
        for (const [asset, values] of Object.entries(profile.beyond || {})) {
          if (run.hops < values.length) beyond[asset] = values[run.hops];
        }
        const value = money(beyond);
        text += value ? `${value} lies beyond ${hopWord(run.hops)}.`
                      : `nothing lies beyond ${hopWord(run.hops)} (its deepest endpoint is ` +
                        `${hopWord(profile.deepest)} out).`;
      } else {
        const value = money(profile.at_limit || {});
        text += value ? `the preserved trace stopped ${value} at its limit; this graph follows it further.`
                      : "the preserved trace reached every endpoint within its limit.";
      }
      parts.push(text);
    }
    if (run.policy !== preserved.policy) {
      parts.push(`This graph splits mixed funds by ${run.policy}, ${name} by ${preserved.policy}.`);
    }
    return parts.length ? parts.join(" ")
      : `Same owner hops and policy as ${name}: the amounts match it unless the chain store changed since.`;
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
      this.compareBox = options.compare || null;
      this.legendBox = options.legend || null;
      this.preserved = null;
      this.cy = window.cytoscape({
        container: this.container,
        style: [
          { selector: "node", style: {
              "background-color": "data(color)", "label": "data(label)", "font-size": 10,
              "text-wrap": "wrap", "text-valign": "bottom", "text-margin-y": 4, "color": "#1d2733",
              "width": 22, "height": 22, "border-width": 3, "border-color": "data(chainColor)" } },
          { selector: "node[kind = 'seed']", style: { "shape": "diamond", "width": 30, "height": 30 } },
          { selector: "node[kind = 'exchange'], node[kind = 'service'], node[kind = 'gambling']",
            style: { "shape": "round-rectangle", "width": 30, "height": 26 } },
          { selector: "node[?pool]", style: { "shape": "hexagon", "width": 30, "height": 30 } },
          { selector: "node[?sanctioned]", style: {
              "shape": "octagon", "width": 32, "height": 32, "background-color": "#dc2626",
              "color": "#991b1b", "font-weight": "bold" } },
          { selector: "node:selected", style: { "border-width": 4, "border-color": "#f59e0b" } },
          { selector: "edge", style: {
              "width": "data(width)", "line-color": "#94a3b8", "target-arrow-color": "#94a3b8",
              "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "data(label)",
              "font-size": 9, "text-rotation": "autorotate", "text-background-color": "#ffffff",
              "text-background-opacity": 0.8, "color": "#475569" } },
          { selector: "edge[?untraced]", style: { "line-style": "dashed", "width": 1 } },
          { selector: "edge[conversion]", style: {
              "line-style": "dashed", "line-color": "#7c3aed", "target-arrow-color": "#7c3aed",
              "color": "#5b21b6", "text-wrap": "wrap" } },
        ],
      });
      this.cy.on("tap", "node", (event) => this.select(event.target));
    }

    // The chains of the graph with their colours, under the legend of kinds.
    showChains(chains) {
      if (!this.legendBox) return;
      let box = this.legendBox.querySelector("[data-chain-legend]");
      if (!box) {
        box = document.createElement("div");
        box.className = "legend";
        box.setAttribute("data-chain-legend", "");
        this.legendBox.appendChild(box);
      }
      box.innerHTML = Object.entries(chains || {})
        .map(([chain, color]) => `<span style="--c: ${escapeHtml(color)}">Chain ${escapeHtml(chain)}</span>`)
        .join("");
    }

    // A pool's candidate withdrawal chosen by the investigator: its conversion edge (and the withdrawal
    // address, when the graph lacks it) joins the graph.
    addCandidate(candidate) {
      if (this.cy.getElementById(candidate.id).length) return false;
      if (!this.cy.getElementById(candidate.target).length) {
        this.cy.add(nodeElement({ id: candidate.target, address: candidate.target, chain: candidate.chain }));
      }
      this.cy.add(edgeElement(candidate, this.decimals));
      this.layout();
      return true;
    }

    candidatesHtml(data) {
      const list = data.candidates || [];
      if (!list.length) return "";
      const rows = list.map((c, k) => {
        const added = this.cy.getElementById(c.id).length > 0;
        const about = c.conversion || {};
        return `<li data-candidate-row>${escapeHtml(short(c.target))} on ${escapeHtml(c.chain || "?")}: ` +
          `${escapeHtml(about.rule)} (confidence ${escapeHtml(Number(about.confidence).toFixed(2))}, ` +
          `anonymity set ${escapeHtml(about.anonymity_set === null ? "unknown" : about.anonymity_set)}) ` +
          `<button type="button" class="secondary" data-candidate="${k}"${added ? " disabled" : ""}>` +
          `${added ? "Added" : "Add this withdrawal"}</button></li>`;
      }).join("");
      return `<h4>Candidate withdrawals (${list.length})</h4>
        <p class="help">No heuristic proves a link through a pool: each candidate names the heuristic that
          links it and the pool's anonymity set. Add the ones you mean to follow.</p><ul>${rows}</ul>`;
    }

    wireCandidates(data) {
      this.details.querySelectorAll("[data-candidate]").forEach((button) => {
        button.addEventListener("click", () => {
          this.addCandidate(data.candidates[Number(button.dataset.candidate)]);
          button.disabled = true;
          button.textContent = "Added";
        });
      });
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
      const graph = graphOf(doc);
      this.cy.add(elementsOfGraph(graph, this.decimals));
      this.showChains(graph.chains);
      this.layout();
      const ends = (doc.endpoints || []).length;
      this.setStatus(ends ? `Traced ${this.cy.nodes().length} addresses; the funds end at ${ends} places. ` +
                            "Click an address for its risk and tags."
                          : "The trace found no movement of these funds.", ends ? "info" : "error");
    }

    // A case's preserved trace (the page's data-preserved): its graph, built by the server from the trace
    // document kept with the evidence, so that it shows the amounts of the case's subjects and recovery.
    async drawPreserved(preserved) {
      this.preserved = preserved;
      this.cy.elements().remove();
      this.cy.add(elementsOfGraph(preserved.graph, this.decimals));
      this.showChains(preserved.graph.chains);
      this.layout();
      await this.linkTransactions();
    }

    // After a trace of its own: say why its amounts differ from the preserved trace's.
    compare(run) {
      if (!this.compareBox) return;
      const text = hopNote(this.preserved, run, this.decimals, this.symbol);
      this.compareBox.textContent = text;
      this.compareBox.hidden = !text;
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
      // a sender the seeds do not reach (an input of a multi-input spend) sits just before what it paid
      this.cy.nodes().forEach((n) => {
        if (depth.has(n.id())) return;
        const paid = n.outgoers("node").map((m) => depth.get(m.id())).filter((d) => d !== undefined);
        if (paid.length) depth.set(n.id(), Math.max(0, Math.min(...paid) - 1));
      });
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
        this.compare({ chain: this.chain, seeds, hops: maxHops, policy: this.policy });
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
      const pool = this.candidatesHtml(data);
      const listed = data.sanctioned ? `<div class="notice error" data-sanctioned>Sanctioned: on ${
        escapeHtml(data.sanctions_lists.join(", "))} on the day of the transactions traced here.</div>` : "";
      this.details.innerHTML = `<h3>Address</h3><p class="mono">${escapeHtml(data.address)}</p>${listed}
        ${pool}<p class="help">Looking up its risk and tags…</p>`;
      this.wireCandidates(data);
      try {
        const doc = await api("GET", `/api/chains/${encodeURIComponent(data.chain || this.chain)}/addresses/` +
                                     encodeURIComponent(data.address));
        this.details.innerHTML = listed + this.describe(doc, data) + pool;
        this.wireCandidates(data);
        const expand = this.details.querySelector("[data-expand]");
        if (expand) expand.addEventListener("click", () => this.expand(data.address));
      } catch (error) {
        this.details.innerHTML = `<h3>Address</h3><p class="mono">${escapeHtml(data.address)}</p>${listed}
          <div class="notice error">${escapeHtml(error.message)}</div>${pool}`;
        this.wireCandidates(data);
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

  window.FundTrailGraph = { FlowGraph, elementsOf, elementsOfGraph, graphOf, hopNote, inputShares, kindOf, legend,
                            KINDS, CHAIN_COLORS, chainColor };
})();
