// Translated strings rendered by Django into <script type="application/json" id="i18n-strings">
// (a data block: never executed, so the CSP allows it).

const node = document.getElementById("i18n-strings");
const strings = node ? JSON.parse(node.textContent) : {};

export const language = document.documentElement.lang || "en";

// t("thinking", { seconds: "1.2" }) fills Python-style "%(seconds)s" placeholders.
export function t(key, params = {}) {
  const text = strings[key] ?? key;
  return text.replace(/%\((\w+)\)s/g, (match, name) => (name in params ? String(params[name]) : match));
}

const numbers = new Intl.NumberFormat(language);

export function formatNumber(value) {
  return numbers.format(value);
}

export function formatSeconds(ms) {
  return (ms / 1000).toLocaleString(language, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
}
