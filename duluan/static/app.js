// Duluan: small progressive enhancements (the pages work without this file).
// Export button on the search page: start the export through the API and show its progress in place.
"use strict";
(function () {
  const form = document.getElementById("export-form");
  if (!form || !window.fetch) return;
  const box = document.getElementById("export-progress");
  const bar = box.querySelector("progress");
  const text = box.querySelector(".export-text");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const lang = document.documentElement.lang;
  const words = lang === "en"
    ? { queued: "Waiting", running: "Exporting", done: "Done", failed: "Failed", cancelled: "Cancelled", download: "Download", of: "of" }
    : { queued: "Đang chờ", running: "Đang xuất", done: "Xong", failed: "Lỗi", cancelled: "Đã hủy", download: "Tải về", of: "/" };

  function show(job) {
    bar.value = job.percent;
    text.textContent = `${words[job.state] || job.state} · ${job.rows} ${words.of} ${Math.min(job.total, job.limit)}`;
    if (job.error) text.textContent += ` — ${job.error}`;
    if (job.state === "done" && job.download_url) {
      const link = document.createElement("a");
      link.href = job.download_url;
      link.className = "button download";
      link.id = "export-download";
      link.textContent = words.download;
      text.append(" ", link);
    }
  }

  async function poll(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    const job = await response.json();
    if (!response.ok) { text.textContent = job.detail || response.statusText; return; }
    show(job);
    if (job.state === "queued" || job.state === "running") setTimeout(() => poll(url), 700);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const [key, value] of new FormData(form).entries()) {
      if (key !== "csrf_token" && value) body[key] = value;
    }
    box.hidden = false;
    bar.value = 0;
    text.textContent = words.queued;
    const response = await fetch("/api/v1/exports", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const job = await response.json();
    if (!response.ok) { text.textContent = job.detail || response.statusText; return; }
    show(job);
    poll(job.status_url);
  });
})();
