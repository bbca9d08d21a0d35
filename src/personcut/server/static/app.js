// The personcut page: send the photo to /api/remove, show original and cutout, offer a download.
const $ = (id) => document.getElementById(id);
let current = null;   // the File being shown
let resultUrl = null;
let needKey = false;

fetch("/api/info").then((r) => r.json()).then((info) => {
  $("info").textContent = `personcut ${info.version} · ${info.model} · ${info.runtime} on ${info.device}`;
  needKey = info.api_key_required;
  $("keyrow").hidden = !needKey;
});

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function run() {
  if (!current) return;
  const mode = document.querySelector("input[name=bgmode]:checked").value;
  const form = new FormData();
  form.append("file", current);
  if (mode === "color") form.append("bg", $("color").value);
  if (mode === "blur") form.append("blur", "12");
  form.append("quality", $("quality").value);
  const headers = needKey ? { "X-API-Key": $("apikey").value } : {};
  setStatus("Removing the background…");
  $("download").hidden = true;
  const started = performance.now();
  try {
    const response = await fetch("/api/remove", { method: "POST", body: form, headers });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail; } catch (e) { /* not JSON */ }
      setStatus(`Could not process ${current.name}: ${detail}`, true);
      $("result").removeAttribute("src");
      $("download").removeAttribute("href");  // nothing stale to download after an error
      return;
    }
    const blob = await response.blob();
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = URL.createObjectURL(blob);
    $("result").src = resultUrl;
    const stem = current.name.replace(/\.[^.]+$/, "");
    $("download").href = resultUrl;
    $("download").download = `${stem}.cutout.png`;
    $("download").hidden = false;
    setStatus(`Done in ${Math.round(performance.now() - started)} ms.`);
  } catch (error) {
    setStatus(`The server could not be reached: ${error}`, true);
  }
}

function choose(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) {
    setStatus(`${file.name} is not an image.`, true);
    return;
  }
  current = file;
  $("original").src = URL.createObjectURL(file);
  run();
}

$("file").addEventListener("change", (e) => choose(e.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
  e.preventDefault(); drop.classList.add("over");
}));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
  e.preventDefault(); drop.classList.remove("over");
}));
drop.addEventListener("drop", (e) => choose(e.dataTransfer.files[0]));
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
document.querySelectorAll("input[name=bgmode], #color, #quality").forEach((el) => el.addEventListener("change", run));
