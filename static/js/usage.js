// The user's usage page: GET /api/usage/ drawn as one card per period (today, this week, this
// month) with what was used, the limit and what remains. Strings come from i18n.js's data block.

import { formatNumber, language, t } from "./i18n.js";

const config = JSON.parse(document.getElementById("usage-config").textContent);
const KINDS = ["messages", "tokens", "cost_cny"];
const PERIODS = ["day", "week", "month"];
const money = new Intl.NumberFormat(language, { minimumFractionDigits: 2, maximumFractionDigits: 6 });

function amount(kind, value) {
  if (value === null || value === undefined) return t("no_limit");
  return kind === "cost_cny" ? money.format(Number(value)) : formatNumber(Number(value));
}

function element(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function card(name, period, timeZone) {
  const heading = `usage-${name}-heading`;
  const section = element("section", { class: "usage-period", "aria-labelledby": heading, "data-period": name });
  section.append(element("h2", { id: heading, text: t(name) }));
  // Periods are calendar periods in the quota time zone: show their reset in that zone.
  const when = new Intl.DateTimeFormat(language, { dateStyle: "medium", timeStyle: "short", timeZone });
  const resets = when.format(new Date(period.resets_at));
  section.append(element("p", { class: "usage-period__reset", text: t("resets_at", { time: resets }) }));
  const head = element("tr", {}, [
    element("td"),
    element("th", { scope: "col", text: t("used") }),
    element("th", { scope: "col", text: t("limit") }),
    element("th", { scope: "col", text: t("remaining") }),
  ]);
  const body = element("tbody");
  for (const kind of KINDS) {
    const used = period.used[kind];
    const limit = period.limits[kind];
    const usedCell = element("td", { "data-kind": kind, "data-col": "used", text: amount(kind, used) });
    if (limit !== null && Number(limit) > 0) {
      const meter = element("meter", {
        class: "usage-meter",
        min: "0",
        max: String(limit),
        value: String(Math.min(Number(used), Number(limit))),
        high: String(Number(limit) * 0.8),
        "aria-label": t("used_of", { used: amount(kind, used), limit: amount(kind, limit) }),
      });
      usedCell.append(meter);
    }
    body.append(
      element("tr", { "data-kind": kind }, [
        element("th", { scope: "row", text: t(kind) }),
        usedCell,
        element("td", { "data-kind": kind, "data-col": "limit", text: amount(kind, limit) }),
        element("td", { "data-kind": kind, "data-col": "remaining", text: amount(kind, period.remaining[kind]) }),
      ]),
    );
  }
  const table = element("table", {}, [element("thead", {}, [head]), body]);
  section.append(table);
  section.append(
    element("p", {
      class: "usage-period__reset",
      text: t("token_split", {
        prompt: formatNumber(period.used.prompt_tokens),
        completion: formatNumber(period.used.completion_tokens),
      }),
    }),
  );
  return section;
}

async function load() {
  const box = document.getElementById("usage-periods");
  const error = document.getElementById("usage-error");
  try {
    const response = await fetch(config.usageUrl, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (response.status === 401 || response.status === 403) {
      window.location.assign(config.chatUrl);
      return;
    }
    if (!response.ok) throw new Error(String(response.status));
    const report = await response.json();
    document.getElementById("usage-zone").textContent = t("time_zone", { zone: report.time_zone });
    box.replaceChildren(...PERIODS.map((name) => card(name, report[name], report.time_zone)));
  } catch {
    error.textContent = t("load_failed");
    error.hidden = false;
  } finally {
    box.setAttribute("aria-busy", "false");
  }
}

load();
