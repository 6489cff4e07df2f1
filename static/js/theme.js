// Light, dark or the system's theme (static/js/theme-init.js applies the saved one before paint).

const KEY = "chatsite:theme";

export function currentTheme() {
  const theme = localStorage.getItem(KEY);
  return theme === "light" || theme === "dark" ? theme : "system";
}

export function setTheme(theme) {
  if (theme === "light" || theme === "dark") {
    localStorage.setItem(KEY, theme);
    document.documentElement.dataset.theme = theme;
  } else {
    localStorage.removeItem(KEY);
    delete document.documentElement.dataset.theme;
  }
}

// The settings dialog (sidebar foot): language (the usual switch), theme, change password.
export function initPreferences({ onOpen = () => {} } = {}) {
  const dialog = document.getElementById("preferences-dialog");
  document.getElementById("preferences-open").addEventListener("click", () => {
    for (const radio of dialog.querySelectorAll("input[name='theme']")) {
      radio.checked = radio.value === currentTheme();
    }
    onOpen();
    dialog.showModal();
  });
  dialog.addEventListener("change", (event) => {
    if (event.target.name === "theme") setTheme(event.target.value);
  });
}
