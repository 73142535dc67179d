-- Ranking benchmark: how well does each surrogate's score rank architectures by their accuracy
-- after full training?
--
-- Real labels (the default mode):
--   hypernas run scripts/bench/ranking.lua --experiment ranking-nb201 \
--     --set truth=../shared/data/nb201/dev-1000.csv [--set subset=200 --set methods=params,ghn ...]
-- reads NAS-Bench-201 cells with their published 200-epoch accuracies (`column`, default
-- cifar10_test) and scores a seeded subset of them (`subset`, 0: all) with every method, on
-- `data` (default cifar10) at a reduced NB201 size (`cells`, `channels`). Only this script reads
-- the labels: the surrogates see the architectures and the data, never the accuracies.
--
-- Trained labels (a cheaper second mode, no --set truth):
--   hypernas run scripts/bench/ranking.lua --experiment ranking-fmnist [--set pool=50 ...]
-- draws `pool` cells at random and trains each from scratch with one fixed recipe
-- (`train_steps` SGD steps on `data`, default fashion-mnist); the trainings are stored in the
-- experiment and reused by reruns.
--
-- Every method scores the same cells. The table gives Pearson, Spearman and Kendall with
-- percentile-bootstrap 95 % intervals (1,000 resamples), the precision of the top 10 % (the
-- share of the 10 % best-scored cells that are among the 10 % most accurate), the fit cost and
-- the cost per architecture. It is written to ranking.md, and the scores to ranking.csv, beside
-- the store.

local truth_file = nas.arg("truth", "")
local real = truth_file ~= ""
local data_name = nas.arg("data", real and "cifar10" or "fashion-mnist")
local cells, channels = nas.arg("cells", 1), nas.arg("channels", 8)
local eval_images = nas.arg("eval_images", real and 2000 or 1000)
local ghn_steps = nas.arg("ghn_steps", 300)  -- fit steps, over as many epochs as they take

local methods = {
  { label = "params", name = "params" },
  { label = "flops", name = "flops" },
  { label = "sgd, 10 steps", name = "sgd", options = { steps = 10 } },
  { label = "sgd, 50 steps", name = "sgd", options = { steps = 50 } },
  { label = "ghn, forward-backward", name = "ghn", options = {}, fit = true },
  { label = "ghn, synchronous", name = "ghn", options = { propagation = "synchronous" }, fit = true },
  { label = "ghn + GHN-2 options", name = "ghn",
    options = { fan_in_norm = true, layer_norm = true, meta_batch = 4 }, fit = true },
  { label = "ghn, GHN-2: fan-in norm", name = "ghn", options = { fan_in_norm = true }, fit = true },
  { label = "ghn, GHN-2: layer norm", name = "ghn", options = { layer_norm = true }, fit = true },
  { label = "ghn, GHN-2: meta-batch 4", name = "ghn", options = { meta_batch = 4 }, fit = true },
  { label = "ghn, GHN-2: virtual edges", name = "ghn", options = { virtual_edges = true }, fit = true },
  -- ADWP's GeneratingBlocks on the relaxed NB201 network: Stage 1 as published (random α), and
  -- with half the steps on random discrete cells (onehot_prob), the option for scoring cells.
  { label = "adwp, Stage 1 (random alpha)", name = "adwp", options = {}, fit = true },
  { label = "adwp, onehot_prob 0.5", name = "adwp", options = { onehot_prob = 0.5 }, fit = true },
  -- SMASH's hypernetwork reading nb201's ±1 one-hot encoding (per edge and op) and generating
  -- every conv weight of the cell network (a deviation: nb201 has no bottleneck convs).
  { label = "smash, encoding -> conv weights", name = "smash", options = {}, fit = true },
}
-- The training-free proxies (plugins/surrogates/zero_cost), each at its defaults. Not among the
-- methods run without --set methods (they are compared by scripts/compare.lua); name them, e.g.
-- --set methods=synflow,naswot.
local proxies = { "synflow", "naswot", "jacob_cov", "snip", "grad_norm", "grasp", "fisher", "zen", "aznas" }
-- --set ghn_options=key=value,key=value adds a GHN with those options (an ablation row; with
-- no --set methods, only that row runs). Values: true/false, numbers, or text.
local ghn_options = nas.arg("ghn_options", "")
local only = nas.arg("methods", "")
if ghn_options ~= "" then
  local o = {}
  for key, value in ghn_options:gmatch("([%w_]+)=([^,]+)") do
    if value == "true" then o[key] = true
    elseif value == "false" then o[key] = false
    else o[key] = tonumber(value) or value end
  end
  -- --set ghn_checkpoint=FILE loads a fitted GHN (saved by an earlier run of this script, with
  -- the same model options) instead of fitting one: for options that change only the scoring
  -- (score_metric, finetune_steps, ...) and for eval_images.
  local checkpoint = nas.arg("ghn_checkpoint", "")
  methods[#methods + 1] = { label = "ghn, " .. ghn_options, name = "ghn", options = o,
                            fit = checkpoint == "", checkpoint = checkpoint ~= "" and checkpoint or nil }
end
local only_extra = ghn_options ~= "" and only == ""
-- --set methods=a,b,... keeps the methods whose plugin name is listed, or whose label
-- contains the text given (e.g. --set methods=GHN-2: for the single GHN-2 options).
local selected = {}
if only ~= "" then
  for _, p in ipairs(proxies) do methods[#methods + 1] = { label = p, name = p } end
end
for _, m in ipairs(methods) do
  if only_extra then
    if m.label == "ghn, " .. ghn_options then selected[#selected + 1] = m end
  elseif only == "" or only:find(m.name, 1, true) or m.label:find(only, 1, true) then
    selected[#selected + 1] = m
  end
end
assert(#selected > 0, "no method matches --set methods=" .. only)

-- The data is opened only when a method reads it (params and flops do not).
local needs_data = not real
for _, m in ipairs(selected) do
  local caps = nas.surrogate(m.name, m.options):capabilities()
  for _, c in ipairs(caps) do needs_data = needs_data or c == "needs_data" end
end
local data = needs_data and nas.dataset{ name = data_name } or nil
local space = nas.space{ name = "nb201", cells_per_stage = cells, channels = channels, data = data }

-- The cells and their labels.
local pool, truth = {}, {}
local truth_note
if real then
  local column = nas.arg("column", "cifar10_test")
  local rows = nas.read_csv(truth_file)
  assert(#rows > 0, truth_file .. " has no rows")
  assert(rows[1].arch and rows[1][column], string.format(
    "%s needs the columns 'arch' and '%s'", truth_file, column))
  -- A seeded subset (Fisher-Yates on a copy), the same for every method and every rerun.
  local subset = nas.arg("subset", 0)
  local subset_seed = nas.arg("subset_seed", nas.seed)  -- another --seed, the same cells
  math.randomseed(subset_seed)
  local order = {}
  for i = 1, #rows do order[i] = i end
  for i = #order, 2, -1 do
    local j = math.random(i)
    order[i], order[j] = order[j], order[i]
  end
  local n = (subset > 0 and subset < #rows) and subset or #rows
  for k = 1, n do
    local row = rows[order[k]]
    pool[k] = space:parse(row.arch)
    truth[k] = row[column]
  end
  truth_note = string.format("ground truth: %s, column %s (NAS-Bench-201, 200 epochs), %d of its %d cells (seed %d).",
    truth_file, column, n, #rows, subset_seed)
else
  local train_steps = nas.arg("train_steps", 400)
  pool = space:sample(nas.arg("pool", 50))
  for i, arch in ipairs(pool) do
    local r = nas.train{ arch = arch, space = space, data = data, epochs = 1, max_steps = train_steps,
                         batch = 64, lr = 0.05, test_images = 5000, valid_images = 1000 }
    truth[i] = r.test_accuracy
    nas.log(string.format("ground truth %d/%d: %.4f %s", i, #pool, r.test_accuracy, r.reused and "(reused)" or ""))
  end
  truth_note = string.format("ground truth: test accuracy after %d SGD steps of batch 64 on %s.",
    train_steps, data_name)
end

local function interval(metric, scores)
  local v, lo, hi = nas.metrics.bootstrap(metric, scores, truth, { samples = 1000, seed = nas.seed })
  return string.format("%.3f [%.2f, %.2f]", v, lo, hi)
end
local top = math.max(1, math.floor(#pool / 10 + 0.5))

-- Each fitted GHN is also combined with `ensemble_with` (default params; "" for none) by the
-- `ensemble` surrogate's rank averaging, from the GHN's checkpoint (no second fit).
local ensemble_with = nas.arg("ensemble_with", real and "params" or "")
local function member_spec(m, checkpoint)
  local keys = {}
  for k in pairs(m.options or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(m.options[k]) end
  return m.name .. (#parts > 0 and (":" .. table.concat(parts, ",")) or "") .. "@" .. checkpoint
end

local rows, csv = {}, { "method,arch,score,truth" }
local function run_method(m)
  local s = nas.surrogate(m.name, m.options)
  local fit_seconds, ckpt = m.fit_seconds or 0, m.checkpoint
  if m.fit then
    local t = nas.clock()
    s:fit{ space = space, data = data, epochs = 1000, steps = ghn_steps, batch = 64 }
    fit_seconds = nas.clock() - t
    ckpt = s:save("checkpoints/" .. m.label:gsub("[^%w]+", "_") .. ".ckpt")
  elseif m.checkpoint then
    s:load(m.checkpoint)
  end
  local t = nas.clock()
  local scores, failed = s:score{ space = space, data = data, archs = pool, images = eval_images }
  local per_arch = (nas.clock() - t) / #pool
  -- A failed cell (NaN) ranks last: a surrogate that cannot score it gains nothing from it.
  local lowest = math.huge
  for _, v in ipairs(scores) do if v == v then lowest = math.min(lowest, v) end end
  for i, v in ipairs(scores) do if v ~= v then scores[i] = lowest - 1 end end
  rows[#rows + 1] = string.format("| %s | %s | %s | %s | %.2f | %d | %.0f | %.4f |", m.label,
    interval("pearson", scores), interval("spearman", scores), interval("kendall", scores),
    nas.metrics.top_k_overlap(scores, truth, top), #failed, fit_seconds, per_arch)
  print(rows[#rows])
  for i, arch in ipairs(pool) do
    csv[#csv + 1] = string.format("%q,%q,%.9g,%.9g", m.label, arch, scores[i], truth[i])
  end
  return ckpt, fit_seconds
end
for _, m in ipairs(selected) do
  local ckpt, fit_seconds = run_method(m)
  if m.name == "ghn" and ckpt and ensemble_with ~= "" then
    run_method{ label = m.label .. " + " .. ensemble_with .. " (ensemble, rank average)",
                name = "ensemble", fit_seconds = fit_seconds,
                options = { members = member_spec(m, ckpt) .. ";" .. ensemble_with } }
  end
end

local lo, hi = math.huge, -math.huge
for _, a in ipairs(truth) do lo = math.min(lo, a); hi = math.max(hi, a) end
local report = table.concat({
  string.format("Pool: %d nb201 cells, scored at cells_per_stage=%d, channels=%d%s.", #pool, cells, channels,
    data and (" on " .. data_name) or ""),
  truth_note .. string.format(" Range %.3f to %.3f.", lo, hi),
  string.format("Scores on %d validation images; GHNs trained for %d steps of batch 64. Seed %d.",
    eval_images, ghn_steps, nas.seed),
  string.format("Intervals: percentile bootstrap, 95 %%, 1,000 resamples. P@10%%: precision of the top %d.", top),
  "",
  "| method | Pearson | Spearman | Kendall | P@10% | failed | fit s | s / arch |",
  "| --- | --- | --- | --- | --- | --- | --- | --- |",
  table.concat(rows, "\n"), "" }, "\n")
print("\n" .. report)
nas.write_file("ranking.csv", table.concat(csv, "\n") .. "\n")
print("written to " .. nas.write_file("ranking.md", report))
