// Dashboard: the job list, per job a comparison of weighting strategies, live while the job
// runs (server-sent events), and several finished jobs pooled into one strategies × datasets
// table (GET /comparisons). The token stays in this browser (localStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const state = { token: localStorage.getItem("tapweight.token") || "", jobId: null, detail: null,
                rows: [], live: {}, source: null, dataset: null, timer: null,
                selected: new Set(), comparisonQuery: null };

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) },
  });
  if (response.status === 401) throw new Error("the token was refused (401)");
  if (!response.ok) {
    // The API's own message (Problem.detail) says what to change; show it when there is one.
    const problem = await response.json().catch(() => null);
    if (typeof problem?.detail === "string") throw new Error(`${problem.detail} (HTTP ${response.status})`);
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  return response;
}

function appended(parent, tag, text, className) {
  const element = document.createElement(tag);
  element.textContent = text;
  if (className) element.className = className;
  parent.appendChild(element);
  return element;
}

function cell(row, text, className) {
  return appended(row, "td", text, className);
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
      row.appendChild(pickCell(job));
      cell(row, job.name);
      cell(row, job.status, `badge ${job.status}`);
      cell(row, `${job.trials_done}/${job.trials_total ?? "?"}`);
      cell(row, new Date(job.created_at).toLocaleString([], { dateStyle: "short", timeStyle: "short" }));
      row.addEventListener("click", () => { location.hash = `job=${job.id}`; });
      body.appendChild(row);
    }
    updateCompareButton();
    $("jobs-message").textContent = page.total ? `${page.total} job(s)` : "No jobs yet.";
    $("token-state").textContent = "";
  } catch (error) {
    $("jobs-message").textContent = error.message;
  }
}

// A checkbox per finished job: the jobs ticked are compared together.
function pickCell(job) {
  const td = document.createElement("td");
  const pick = document.createElement("input");
  pick.type = "checkbox";
  pick.className = "pick";
  pick.checked = state.selected.has(job.id);
  pick.disabled = !FINAL.has(job.status);
  pick.title = pick.disabled ? "only finished jobs can be compared" : "compare this job with others";
  pick.setAttribute("aria-label", `compare ${job.name}`);
  pick.addEventListener("click", (event) => event.stopPropagation());  // not "open the job"
  pick.addEventListener("change", () => {
    if (pick.checked) state.selected.add(job.id); else state.selected.delete(job.id);
    updateCompareButton();
  });
  td.appendChild(pick);
  return td;
}

function updateCompareButton() {
  const count = state.selected.size;
  $("compare-selected").disabled = count === 0;
  $("compare-selected").textContent = count ? `Compare selected (${count})` : "Compare selected";
}

// -- one job ----------------------------------------------------------------------------------

async function openJob(jobId) {
  if (state.source) { state.source.close(); state.source = null; }
  $("compare-panel").hidden = true;
  state.comparisonQuery = null;
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
    colors: results.map((s) => Charts.strategyColor(s.strategy)),  // one per label, in every view
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
    colors: groups.map(Charts.strategyColor),
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

// -- several jobs compared ----------------------------------------------------------------------

// ``query`` is /comparisons' query string: job=<id>&job=<id>..., or spec=<name or hash>.
async function openComparison(query, title) {
  if (state.source) { state.source.close(); state.source = null; }
  state.jobId = null;
  state.comparisonQuery = query;
  $("job-panel").hidden = true;
  $("compare-panel").hidden = false;
  $("compare-title").textContent = title;
  $("compare-error").hidden = true;
  for (const id of ["compare-meta", "compare-jobs"]) $(id).textContent = "";
  $("compare-table").tHead.replaceChildren();
  $("compare-table").tBodies[0].replaceChildren();
  $("compare-notes").replaceChildren();
  try {
    const pooled = await (await api(`/comparisons?${query}`)).json();
    if (query !== state.comparisonQuery) return;  // another view was opened meanwhile
    renderPooled(pooled);
  } catch (error) {
    if (query !== state.comparisonQuery) return;
    $("compare-error").textContent = error.message;
    $("compare-error").hidden = false;
  }
  loadJobs();
}

function block(parent, text, className) {
  return appended(parent, "span", text, className);
}

function swatch(label) {
  const mark = document.createElement("i");
  mark.className = "swatch";
  mark.style.background = Charts.strategyColor(label);
  return mark;
}

// Strategies (rows, best average rank first) × datasets (columns): mean ± half the 95%
// interval, rank, and the paired verdict against the reference. Every number comes from the
// API (harness/paired.py and harness/summary.py compute them); the page only lays them out.
function renderPooled(pooled) {
  const reference = pooled.reference;
  const friedman = pooled.friedman_p_value === null
    ? "no Friedman test"
    : `Friedman p = ${pooled.friedman_p_value.toPrecision(2)}, critical difference ${Charts.fmt(pooled.critical_difference)}`;
  $("compare-meta").textContent = `${pooled.jobs.length} job(s) · ${reference ? `reference ${reference}` : "no reference strategy"} · ${friedman}`;
  $("compare-jobs").textContent = "Jobs: " + pooled.jobs.map((member) =>
    `${member.name} (${member.id.slice(0, 8)}, ${member.status}, ${member.trials_done} trials)`).join(", ");
  const key = (dataset, strategy) => `${dataset}\u0000${strategy}`;
  const scores = new Map(pooled.scores.map((score) => [key(score.dataset, score.strategy), score]));
  const pairs = new Map(pooled.differences.map((pair) => [key(pair.dataset, pair.strategy), pair]));
  const best = new Set(pooled.datasets.flatMap((column) => column.best.map((name) => key(column.name, name))));

  const head = document.createElement("tr");
  block(head.appendChild(document.createElement("th")), "strategy");
  for (const column of pooled.datasets) {
    const th = document.createElement("th");
    th.dataset.dataset = column.name;
    block(th, column.name, "dataset-name");
    block(th, `${column.metric}: ${column.higher_is_better ? "higher ↑" : "lower ↓"} is better`, "direction");
    head.appendChild(th);
  }
  block(head.appendChild(document.createElement("th")), "average rank");
  $("compare-table").tHead.replaceChildren(head);

  const topRank = pooled.strategies[0]?.average_rank;
  const body = $("compare-table").tBodies[0];
  body.replaceChildren();
  for (const ranked of pooled.strategies) {
    const row = document.createElement("tr");
    row.dataset.strategy = ranked.name;
    const name = document.createElement("th");
    name.scope = "row";
    name.append(swatch(ranked.name), document.createTextNode(ranked.name));
    if (ranked.name === reference) block(name, "reference", "direction");
    row.appendChild(name);
    for (const column of pooled.datasets) {
      const td = document.createElement("td");
      td.className = "score-cell";
      td.dataset.dataset = column.name;
      td.dataset.strategy = ranked.name;
      const score = scores.get(key(column.name, ranked.name));
      if (!score) {
        block(td, "not run", "direction");
      } else {
        const isBest = best.has(key(column.name, ranked.name));
        if (isBest) td.classList.add("best");
        const value = score.low === null
          ? `${Charts.fmt(score.mean)} (1 seed)`
          : `${Charts.fmt(score.mean)} ± ${Charts.fmt((score.high - score.low) / 2)}`;
        block(td, value, "value").title = score.low === null
          ? "one seed: no interval"
          : `95% interval [${Charts.fmt(score.low)}, ${Charts.fmt(score.high)}] over ${score.seeds} seeds`;
        block(td, `${isBest ? "★ " : ""}rank ${score.rank} · ${score.seeds} seed${score.seeds > 1 ? "s" : ""}`, "rank");
        td.appendChild(verdictMarker(pairs.get(key(column.name, ranked.name)), ranked.name === reference));
      }
      row.appendChild(td);
    }
    const rank = document.createElement("td");
    rank.className = "average-rank";
    block(rank, `${ranked.average_rank === topRank ? "★ " : ""}${ranked.average_rank.toFixed(2)}`, "value");
    block(rank, `over ${ranked.datasets} dataset${ranked.datasets > 1 ? "s" : ""}`, "rank");
    row.appendChild(rank);
    body.appendChild(row);
  }
  $("compare-notes").replaceChildren(...pooled.notes.map((note) => {
    const item = document.createElement("li");
    item.textContent = note;
    return item;
  }));
}

// The strategy against the reference on one dataset, from the strategy's side: a pair's
// "win" is the reference's, so this strategy is worse there.
const MARKERS = {
  win: ["worse", (ref) => `▼ worse than ${ref}`],
  loss: ["better", (ref) => `▲ better than ${ref}`],
  "no detectable difference": ["tie", () => "≈ no detectable difference"],
  "too few seeds": ["few", () => "too few seeds to tell"],
};

function verdictMarker(pair, isReference) {
  const span = document.createElement("span");
  if (isReference || !pair) {
    span.className = "marker none";
    span.textContent = isReference ? "reference" : "";
    return span;
  }
  const [kind, text] = MARKERS[pair.verdict];
  span.className = `marker ${kind}`;
  span.textContent = text(pair.reference);
  const interval = pair.low === null ? "no interval" : `[${Charts.fmt(pair.low)}, ${Charts.fmt(pair.high)}]`;
  const p = pair.p_value === null ? "" : `, p = ${pair.p_value.toPrecision(2)}`;
  span.title = `${pair.reference} − ${pair.strategy} = ${Charts.fmt(pair.mean)} ${interval}${p} over ${pair.seeds} seed(s) (+ = ${pair.reference} better)`;
  return span;
}

// -- wiring -----------------------------------------------------------------------------------

function jobFromHash() {
  const match = location.hash.match(/job=([0-9a-f]+)/);
  return match ? match[1] : null;
}

// Open a view by its address; the same address again reloads it (no hashchange then).
function go(hash) {
  if (location.hash === `#${hash}`) route(); else location.hash = hash;
}

// #job=<id>, #compare=<id>,<id>,... or #spec=<name or hash>.
function route() {
  const compare = location.hash.match(/^#compare=([0-9a-f,]+)$/);
  if (compare) {
    const ids = compare[1].split(",").filter(Boolean);
    return openComparison(ids.map((id) => `job=${id}`).join("&"), `Comparison of ${ids.length} job(s)`);
  }
  const spec = location.hash.match(/^#spec=(.+)$/);
  if (spec) {
    const name = decodeURIComponent(spec[1]);
    return openComparison(`spec=${encodeURIComponent(name)}`, `Every finished job of spec ${name}`);
  }
  return openJob(jobFromHash());
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = state.token;
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    localStorage.setItem("tapweight.token", state.token);
    $("token-state").textContent = "saved";
    loadJobs();
    route();
  });
  $("status-filter").addEventListener("change", loadJobs);
  $("dataset").addEventListener("change", (event) => { state.dataset = event.target.value; renderCharts(); });
  $("cancel").addEventListener("click", async () => {
    await api(`/jobs/${state.jobId}/cancel`, { method: "POST" }).catch((e) => alert(e.message));
    refreshJob();
  });
  $("report-link").addEventListener("click", (event) => { event.preventDefault(); showReport(); });
  $("compare-selected").addEventListener("click", () => go(`compare=${[...state.selected].join(",")}`));
  $("compare-spec").addEventListener("click", () => go(`spec=${encodeURIComponent(state.detail.name)}`));
  window.addEventListener("hashchange", route);
  loadJobs();
  if (state.token) route();
  setInterval(loadJobs, 5000);
});
