// The usage dashboard's charts (admin, conversations/admin_dashboard.py). The figures and the
// strings arrive as JSON data blocks; Chart.js (static/vendor/chartjs) is loaded before this
// module and sets window.Chart. The tables beside the charts carry the same figures as text.

const data = JSON.parse(document.getElementById("usage-dashboard-data").textContent);
const strings = JSON.parse(document.getElementById("dashboard-strings").textContent);
const language = document.documentElement.lang || "en";
const numbers = new Intl.NumberFormat(language);

const BLUE = "#2f6fb3";
const ORANGE = "#d9822b";
const RED = "#c0392b";

function css(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

function baseOptions() {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    locale: language,
    color: css("--body-fg", "#333"),
    plugins: { legend: { display: false } },
    scales: {
      x: { ticks: { color: css("--body-quiet-color", "#666") }, grid: { display: false } },
      y: { ticks: { color: css("--body-quiet-color", "#666") }, beginAtZero: true },
    },
  };
}

function draw(id, config) {
  const canvas = document.getElementById(id);
  if (!canvas) return null;
  return new window.Chart(canvas, config);
}

function bars(id, labels, values, label, color, horizontal = false) {
  const options = baseOptions();
  if (horizontal) options.indexAxis = "y";
  return draw(id, {
    type: "bar",
    data: { labels, datasets: [{ label, data: values, backgroundColor: color }] },
    options,
  });
}

function describe(id, labels, values) {
  // A text alternative for screen readers: the chart's figures in a sentence.
  const canvas = document.getElementById(id);
  if (!canvas) return;
  const parts = labels.map((label, i) => `${label}: ${numbers.format(values[i])}`);
  canvas.setAttribute("aria-description", parts.length ? parts.join("; ") : strings.no_data);
}

function daysChart() {
  const labels = data.days.map((row) => row.day);
  const tokens = data.days.map((row) => row.tokens);
  const cost = data.days.map((row) => Number(row.cost_cny));
  const options = baseOptions();
  options.plugins.legend = { display: true, labels: { color: options.color } };
  options.scales.cost = {
    position: "right",
    beginAtZero: true,
    grid: { drawOnChartArea: false },
    ticks: { color: options.scales.y.ticks.color },
  };
  draw("chart-days", {
    data: {
      labels,
      datasets: [
        { type: "bar", label: strings.tokens, data: tokens, backgroundColor: BLUE, yAxisID: "y" },
        {
          type: "line",
          label: strings.cost_cny,
          data: cost,
          borderColor: ORANGE,
          backgroundColor: ORANGE,
          yAxisID: "cost",
          pointRadius: 2,
        },
      ],
    },
    options,
  });
  describe("chart-days", labels, tokens);
}

function start() {
  if (!window.Chart) return;
  daysChart();
  const models = data.models.map((row) => row.model || strings.no_model);
  const modelTokens = data.models.map((row) => row.tokens);
  bars("chart-models", models, modelTokens, strings.tokens, BLUE, true);
  describe("chart-models", models, modelTokens);
  const groups = data.groups.map((row) => row.group ?? strings.no_group);
  const groupTokens = data.groups.map((row) => row.tokens);
  bars("chart-groups", groups, groupTokens, strings.tokens, BLUE, true);
  describe("chart-groups", groups, groupTokens);
  const users = data.users.map((row) => row.username);
  const userTokens = data.users.map((row) => row.tokens);
  bars("chart-users", users, userTokens, strings.tokens, BLUE, true);
  describe("chart-users", users, userTokens);
  const codes = data.errors.map((row) => row.error_code);
  const counts = data.errors.map((row) => row.count);
  bars("chart-errors", codes, counts, strings.errors, RED, true);
  describe("chart-errors", codes, counts);
  document.body.dataset.chartsReady = "true";
}

start();
