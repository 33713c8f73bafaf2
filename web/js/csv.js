// CSV for spreadsheets: what the action center and hunting export.

export function csvCell(v) {
  const s = v === null || v === undefined ? "" : String(v);
  // A leading = + - @ would make a spreadsheet run it as a formula.
  const safe = /^[=+\-@\t\r]/.test(s) ? "'" + s : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

// Hands lines (already joined cells) to the browser as a file called name.
export function download(name, lines) {
  const url = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
