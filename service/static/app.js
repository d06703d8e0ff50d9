// Dashboard: the job list, and per job a comparison of weighting strategies, live while the
// job runs (server-sent events). The token stays in this browser (localStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const state = { token: localStorage.getItem("tapweight.token") || "", jobId: null, detail: null,
                rows: [], live: {}, source: null, dataset: null, timer: null };

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) },
  });
  if (response.status === 401) throw new Error("the token was refused (401)");
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

// -- job list ---------------------------------------------------------------------------------

async function loadJobs() {
  if (!state.token) {
    $("jobs-message").textContent = "Paste an API token above to see your jobs.";
    return;
  }
  const status = $("status-filter").value;
  try {
    const page = await (await api(`/jobs?limit=200${status ? `&status=${status}` : ""}`)).json();
    const body = $("jobs").tBodies[0];
    body.replaceChildren();
    for (const job of page.items) {
      const row = document.createElement("tr");
      row.dataset.jobId = job.id;
      row.className = job.id === state.jobId ? "selected" : "";
      cell(row, job.name);
      cell(row, job.status, `badge ${job.status}`);
      cell(row, `${job.trials_done}/${job.trials_total ?? "?"}`);
      cell(row, new Date(job.created_at).toLocaleString());
      row.addEventListener("click", () => { location.hash = `job=${job.id}`; });
      body.appendChild(row);
    }
    $("jobs-message").textContent = page.total ? `${page.total} job(s)` : "No jobs yet.";
    $("token-state").textContent = "";
  } catch (error) {
    $("jobs-message").textContent = error.message;
  }
}

// -- one job ----------------------------------------------------------------------------------

async function openJob(jobId) {
  if (state.source) { state.source.close(); state.source = null; }
  state.jobId = jobId;
  state.live = {};
  state.dataset = null;
  $("report").hidden = true;  // another job's report never stays under this one
  $("report").textContent = "";
  $("job-panel").hidden = !jobId;
  if (!jobId) return;
  await refreshJob();
  if (state.detail && !FINAL.has(state.detail.status)) follow(jobId);
  loadJobs();
}

async function refreshJob() {
  const jobId = state.jobId;
  try {
    const [detail, rows] = await Promise.all([
      api(`/jobs/${jobId}`).then((r) => r.json()),
      api(`/jobs/${jobId}/results`).then((r) => r.json()),
    ]);
    if (jobId !== state.jobId) return;
    state.detail = detail;
    state.rows = rows;  // harness/row.schema.json
    render();
  } catch (error) {
    $("job-title").textContent = error.message;
  }
}

// Live view: events.jsonl as server-sent events (EventSource cannot send headers, so the
// token goes in the query string; only this route accepts it there).
function follow(jobId) {
  const source = new EventSource(`/jobs/${jobId}/events?token=${encodeURIComponent(state.token)}`);
  state.source = source;
  $("live").textContent = "● live";
  source.addEventListener("progress", (message) => {
    const event = JSON.parse(message.data);
    if (!event.trial || !Array.isArray(event.weights)) return;
    (state.live[event.trial] ||= []).push({ step: event.step, weights: event.weights });
    renderTrajectories();
  });
  for (const kind of ["trial_started", "trial_result", "trial_retry", "trial_error", "status"]) {
    source.addEventListener(kind, () => scheduleRefresh());
  }
  source.addEventListener("end", () => {
    source.close();
    state.source = null;
    $("live").textContent = "";
    refreshJob();
    loadJobs();
  });
}

function scheduleRefresh() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refreshJob, 300);
}

function render() {
  const job = state.detail;
  $("job-title").textContent = job.name;
  $("job-status").textContent = job.status;
  $("job-status").className = `badge ${job.status}`;
  $("job-meta").textContent = `${job.trials_done}/${job.trials_total ?? "?"} trials · spec ${job.spec_hash} · ${job.id}`;
  $("job-error").hidden = !job.error;
  $("job-error").textContent = job.error || "";
  $("cancel").hidden = FINAL.has(job.status) || job.cancel_requested;
  // A registry key, or the mapping of the user's own file (named by its name).
  const datasets = [...new Set(job.spec.datasets.map((d) => (typeof d === "string" ? d : d.name)))];
  state.dataset = state.dataset && datasets.includes(state.dataset) ? state.dataset : datasets[0];
  const select = $("dataset");
  select.replaceChildren(...datasets.map((d) => new Option(d, d, false, d === state.dataset)));
  $("dataset-choice").hidden = datasets.length < 2;
  renderTrials();
  renderComparison();
  renderCharts();
}

// Paired by seed against the spec's reference strategy: a win or a loss only when the 95%
// interval excludes 0 (harness/paired.py computes it; the page only shows it).
function renderComparison() {
  const pairs = state.detail.comparison.filter((pair) => pair.dataset === state.dataset);
  const body = $("comparison").tBodies[0];
  body.replaceChildren();
  $("comparison-caption").textContent = pairs.length
    ? `${pairs[0].reference} against each other strategy on ${state.dataset} (${pairs[0].metric}), paired by seed`
    : "No reference strategy in this job's spec, or no finished pair yet";
  for (const pair of pairs) {
    const row = document.createElement("tr");
    cell(row, pair.strategy);
    cell(row, Charts.fmt(pair.mean));
    cell(row, pair.low === null ? "one seed: none" : `[${Charts.fmt(pair.low)}, ${Charts.fmt(pair.high)}]`);
    cell(row, pair.p_value === null ? "–" : pair.p_value.toPrecision(2));
    cell(row, pair.seeds);
    cell(row, pair.verdict, `verdict ${pair.verdict.replaceAll(" ", "-")}`);
    body.appendChild(row);
  }
}

function renderTrials() {
  const body = $("trials").tBodies[0];
  body.replaceChildren();
  for (const trial of state.detail.progress) {
    const row = document.createElement("tr");
    cell(row, trial.trial);
    cell(row, trial.retries ? `${trial.state} (${trial.retries} retr${trial.retries > 1 ? "ies" : "y"})` : trial.state, `badge ${trial.state}`);
    cell(row, trial.step ?? "");
    cell(row, trial.weights ? trial.weights.map(Charts.fmt).join(" / ") : "");
    body.appendChild(row);
  }
}

function strategiesOf(dataset) {
  return state.detail.results.filter((s) => s.dataset === dataset);
}

// One colour per strategy (by its label among the job's strategies), the same in every chart.
function strategyColor(label) {
  const labels = state.detail.results.map((s) => s.strategy);
  const order = [...new Set(labels)].sort();
  return Charts.color(Math.max(0, order.indexOf(label)));
}

function renderCharts() {
  const results = strategiesOf(state.dataset);
  const objectives = state.detail.spec.objectives;
  const metric = results[0]?.metric || "score";
  const higher = results[0]?.higher_is_better ?? true;
  const scored = results.map((s) => s.test_mean ?? NaN);
  const best = scored.indexOf(higher ? Math.max(...scored) : Math.min(...scored));
  const direction = `test ${metric} (${higher ? "higher" : "lower"} is better)`;
  Charts.bars($("chart-scores"), {
    categories: results.map((s) => s.strategy),
    values: results.map((s) => s.test_mean),
    errors: results.map((s) => s.test_std || 0),
    colors: results.map((s) => strategyColor(s.strategy)),
    best: results.length > 1 ? best : -1,
    yLabel: direction,
  });
  const weighted = results.filter((s) => Array.isArray(s.weights) && s.continued_pretraining);
  Charts.groupedBars($("chart-weights"), {
    groups: weighted.map((s) => s.strategy),
    series: objectives,
    values: weighted.map((s) => s.weights),
    yLabel: "weight",
  });
  const groups = results.map((s) => s.strategy);
  Charts.scatter($("chart-cost"), {
    groups,
    points: results.flatMap((s) => s.seeds.map((seed) => ({
      x: costOf(seed.cost), y: seed.test_mean, group: s.strategy,
      title: `${s.strategy} seed ${seed.seed}: ${Charts.fmt(seed.test_mean)} at ${Charts.fmt(costOf(seed.cost))} device-s`,
    }))),
    xLabel: "compute (device seconds)",
    yLabel: direction,
    colors: groups.map(strategyColor),
  });
  renderTrajectories();
}

function costOf(cost) {
  return cost.device_seconds ?? cost.wall_clock_s ?? NaN;
}

// One small chart per trial of this dataset: each objective's weight over steps (finished
// trials from their results rows, running ones from the live events).
function renderTrajectories() {
  const container = $("chart-trajectories");
  const objectives = state.detail.spec.objectives;
  const byTrial = {};
  for (const result of state.rows) {
    if (result.dataset === state.dataset && result.trajectory?.length > 1) {
      byTrial[`${result.strategy} · seed ${result.seed}`] = result.trajectory;
    }
  }
  const cells = Object.fromEntries(state.detail.progress.map((t) => [t.trial, t]));
  for (const [trial, points] of Object.entries(state.live)) {
    const cell = cells[trial];
    if (!cell || cell.dataset !== state.dataset) continue;
    const key = `${cell.strategy} · seed ${cell.seed}`;
    if (!byTrial[key] && points.length > 1) byTrial[key] = points;
  }
  container.replaceChildren();
  const entries = Object.entries(byTrial);
  if (!entries.length) return Charts.empty(container, "no weight trajectory yet (fixed-weight strategies have none)");
  for (const [name, points] of entries) {
    const box = document.createElement("div");
    box.className = "small-multiple";
    const title = document.createElement("h3");
    title.textContent = name;
    const chart = document.createElement("div");
    box.append(title, chart);
    container.appendChild(box);
    Charts.lines(chart, {
      series: objectives.map((objective, i) => ({
        name: objective,
        points: points.filter((p) => Array.isArray(p.weights)).map((p) => [p.step, p.weights[i]]),
      })),
      xLabel: "step", yLabel: "weight", yDomain: [0, 1],
    });
  }
  Charts.legend(container, objectives, objectives.map((_, i) => Charts.objectiveColor(i)));
}

async function showReport() {
  const pre = $("report");
  try {
    pre.textContent = await (await api(`/jobs/${state.jobId}/report?format=md`)).text();
  } catch (error) {
    pre.textContent = error.message;
  }
  pre.hidden = false;
}

// -- wiring -----------------------------------------------------------------------------------

function jobFromHash() {
  const match = location.hash.match(/job=([0-9a-f]+)/);
  return match ? match[1] : null;
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = state.token;
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    localStorage.setItem("tapweight.token", state.token);
    $("token-state").textContent = "saved";
    loadJobs();
    openJob(jobFromHash());
  });
  $("status-filter").addEventListener("change", loadJobs);
  $("dataset").addEventListener("change", (event) => { state.dataset = event.target.value; renderCharts(); });
  $("cancel").addEventListener("click", async () => {
    await api(`/jobs/${state.jobId}/cancel`, { method: "POST" }).catch((e) => alert(e.message));
    refreshJob();
  });
  $("report-link").addEventListener("click", (event) => { event.preventDefault(); showReport(); });
  window.addEventListener("hashchange", () => openJob(jobFromHash()));
  loadJobs();
  if (state.token) openJob(jobFromHash());
  setInterval(loadJobs, 5000);
});
