// The theme chosen in Settings (light, dark, or the system's), applied before the first paint:
// a classic script loaded from <head>, as the CSP allows no inline script. static/js/theme.js
// changes it later.
(function () {
  try {
    var theme = localStorage.getItem("chatsite:theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (error) {
    // Storage refused (private mode): the system's theme.
  }
})();
