// Transparency pages (公开账目): draw an account's days — money in and out as bars, the balance as a line.
(function () {
  "use strict";

  function yuan(value) {
    return "¥" + value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function drawAccountChart() {
    const holder = document.getElementById("account-chart");
    const source = document.getElementById("account-chart-data");
    if (!holder || !source || !window.echarts) return;
    const data = JSON.parse(source.textContent);
    const chart = echarts.init(holder, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis", valueFormatter: (value) => yuan(Math.abs(value)) },
      legend: { bottom: 0, left: 0 },
      grid: { left: 8, right: 8, top: 16, bottom: 72, containLabel: true },
      dataZoom: data.days.length > 60 ? [{ type: "slider", bottom: 28, height: 16 }] : [],
      xAxis: { type: "category", data: data.days },
      // One axis for all three: the same yuan, and zero where it is for each.
      yAxis: { type: "value", axisLabel: { formatter: (v) => "¥" + v.toLocaleString() } },
      series: [
        { name: data.labels.in, type: "bar", stack: "moves", itemStyle: { color: "#3f9c8c" }, data: data.money_in },
        { name: data.labels.out, type: "bar", stack: "moves", itemStyle: { color: "#c8553d" }, data: data.money_out },
        {
          name: data.labels.balance, type: "line", step: "end", showSymbol: data.days.length < 60,
          itemStyle: { color: "#2f6db5" }, data: data.balance,
        },
      ],
    });
    holder.dataset.drawn = "true";
    window.addEventListener("resize", () => chart.resize());
  }

  document.addEventListener("DOMContentLoaded", drawAccountChart);
})();
