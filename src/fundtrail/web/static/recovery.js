// Recovery charts: one bar chart per chain and asset, amounts in coins by what happened to them.
(function () {
  "use strict";
  const DECIMALS = { btc: 8, ltc: 8, bch: 8, doge: 8, dash: 8, zec: 8 };
  const ORDER = ["frozen", "seized", "forfeited", "returned"];
  const COLORS = { frozen: "#1f5fae", seized: "#7b3fa0", forfeited: "#a16207", returned: "#16a34a" };
  document.addEventListener("DOMContentLoaded", () => {
    window.fundtrailCharts = [];
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const data = JSON.parse(canvas.dataset.chart);
      const decimals = data.asset === "native" ? (DECIMALS[data.chain] ?? 18) : 0;
      const values = ORDER.map((k) => Number(BigInt(data.kinds[k] || 0)) / 10 ** decimals);
      const chart = new window.Chart(canvas, {
        type: "bar",
        data: { labels: ORDER, datasets: [{ label: data.asset === "native" ? data.chain.toUpperCase() : "units",
                                            data: values, backgroundColor: ORDER.map((k) => COLORS[k]) }] },
        options: { responsive: true, maintainAspectRatio: false, animation: false,
                   plugins: { legend: { display: false } } },
      });
      window.fundtrailCharts.push(chart);
    });
  });
})();
