// Calculator page behaviour: draw the layer chart after each htmx swap, mark fields named in errors.
(function () {
  "use strict";

  // Draw the horizontal stacked bar from the JSON the server embedded next to the chart div.
  function drawChart(root) {
    const holder = root.querySelector("#layer-chart");
    const source = root.querySelector("#layer-chart-data");
    if (!holder || !source || !window.echarts) return;
    const data = JSON.parse(source.textContent);
    const existing = echarts.getInstanceByDom(holder);
    if (existing) existing.dispose();
    const chart = echarts.init(holder, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      title: { text: data.title, left: 0, textStyle: { fontSize: 14, fontWeight: "normal" } },
      tooltip: { trigger: "item", formatter: (p) => `${p.seriesName}: ¥${data.series[p.seriesIndex].yuan}` },
      legend: { bottom: 0, left: 0 },
      grid: { left: 8, right: 48, top: 44, bottom: 48, containLabel: true },
      xAxis: { type: "value", axisLabel: { formatter: (v) => "¥" + v.toLocaleString() } },
      yAxis: { type: "category", data: [data.category], axisLabel: { show: false } },
      series: data.series.map((s) => ({
        name: s.name,
        type: "bar",
        stack: "total",
        barWidth: 36,
        itemStyle: { color: s.colour },
        data: [s.fen / 100],
      })),
    });
    window.addEventListener("resize", () => chart.resize());
  }

  // Mark the inputs an error names (aria-invalid) and put the cursor in the first one.
  function markErrors(root) {
    const form = document.getElementById("calculator");
    if (!form) return;
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    const box = root.querySelector("[data-error-fields]");
    if (!box) return;
    const fields = box.dataset.errorFields.split(" ").filter(Boolean);
    fields.forEach((name) => {
      const input = form.elements.namedItem(name);
      if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
    });
    const first = fields.length && form.elements.namedItem(fields[0]);
    if (first && first.focus) first.focus();
  }

  // A 422 carries the error fragment: swap it in like a success instead of dropping it.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterSettle", (event) => {
    drawChart(event.detail.target);
    markErrors(event.detail.target);
  });
  document.addEventListener("DOMContentLoaded", () => drawChart(document));
})();
