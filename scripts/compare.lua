-- Every evaluator side by side on one pool: each surrogate scores the same architectures, and
-- its ranking is compared with a ground truth.
--
--   hypernas compare --truth ../shared/data/nb201/dev-1000.csv --subset 200 \
--     --surrogates "params;flops;sgd:steps=10;ghn:fit=300;ghn:fit=300+params"
--   hypernas run scripts/compare.lua --set truth=FILE --set surrogates="params;flops" ...
--
-- Arguments (--set key=value; `hypernas compare` maps its flags onto them):
--   truth        CSV with the columns `arch` and `column` (default cifar10_test), e.g.
--                NAS-Bench-201's accuracies. Only this script reads it: the surrogates see the
--                architectures (and the data), never the ground truth.
--   subset, subset_seed   a seeded subset of the truth rows (0: all; seed default --seed)
--   pool, train_steps     without truth: `pool` architectures sampled from the space, each
--                trained from scratch for `train_steps` SGD steps (batch 64) on `data`; the
--                test accuracy is the ground truth (trainings are stored and reused)
--   space        search space (default nb201), with `cells` (nb201's cells_per_stage, default 1),
--                `channels` (default 8) and `space_options` ("key=value,...")
--   data         dataset (default cifar10 with truth, fashion-mnist without); opened only when a
--                surrogate reads data or is fitted, or to train the pool
--   images, batch  validation images per architecture and evaluation batch size
--   surrogates   ';'-separated specs, each name[:key=value,...][@checkpoint]. `fit=N` among the
--                options fits it for N steps (batch 64) on the space and data before scoring.
--                Specs joined by '+' (a+b) are one `ensemble` surrogate of those members (rank
--                averaging). preset:NAME is the `spec` of configs/NAME.lua (e.g.
--                preset:best-evaluator). Default "params;flops;params+flops".
--   labels       ';'-separated names for the surrogates (default: the specs)
--   bootstrap    resamples of the bootstrap intervals (default 1000)
--
-- Writes report.md (table, plots, the command), compare.csv (surrogate,arch,score,truth) and
-- compare_costs.csv (fit seconds and scoring seconds per architecture, as measured when the
-- work was done; a rerun reuses the stored scores and the fitted checkpoints, and reports those
-- recorded costs) in the experiment folder, and prints the table.

local function trim(s) return s:match("^%s*(.-)%s*$") end
local function split(s, sep)
  local out, start = {}, 1
  while true do
    local at = s:find(sep, start, true)
    if not at then out[#out + 1] = s:sub(start); return out end
    out[#out + 1] = s:sub(start, at - 1)
    start = at + 1
  end
end
-- A value typed as --set types it: true/false, a decimal number, or text.
local function typed(v)
  if v == "true" then return true elseif v == "false" then return false end
  if v:match("^[+-]?%.?%d[%d.eE+-]*$") and tonumber(v) then return tonumber(v) end
  return v
end
local function csv_field(v)
  v = tostring(v)
  if v:find('[,"\n]') then return '"' .. v:gsub('"', '""') .. '"' end
  return v
end
local function md(text) return (tostring(text):gsub("|", "\\|")) end
-- FNV-1a (64 bits) of a text, as 16 hex digits: names a fitted checkpoint.
local function hash(text)
  local h = -3750763034362895579  -- 0xcbf29ce484222325
  for i = 1, #text do h = (h ~ text:byte(i)) * 1099511628211 end
  return string.format("%016x", h)
end

-- ---- Arguments ---------------------------------------------------------------------------
local truth_file = nas.arg("truth", "")
local real = truth_file ~= ""
local space_name = nas.arg("space", "nb201")
local data_name = nas.arg("data", real and "cifar10" or "fashion-mnist")
local cells, channels = nas.arg("cells", 1), nas.arg("channels", 8)
local images = nas.arg("images", real and 2000 or 1000)
local batch = nas.arg("batch", 256)
local resamples = nas.arg("bootstrap", 1000)
local surrogates_arg = nas.arg("surrogates", "params;flops;params+flops")
local labels_arg = nas.arg("labels", "")

-- ---- Surrogate specs -----------------------------------------------------------------------
local function bad(spec, why) error(string.format("surrogate spec '%s': %s", spec, why), 0) end

-- One member: name[:key=value,...][@checkpoint], with fit=N taken out of the options.
local function parse_member(text, spec)
  local body, checkpoint = text, nil
  local at = text:find("@", 1, true)
  if at then
    body, checkpoint = trim(text:sub(1, at - 1)), trim(text:sub(at + 1))
    if checkpoint == "" then bad(spec, "'@' but no checkpoint file") end
  end
  local colon = body:find(":", 1, true)
  local name = trim(colon and body:sub(1, colon - 1) or body)
  if not name:match("^[%w_.%-]+$") then
    bad(spec, "expected name[:key=value,...][@checkpoint], got '" .. trim(text) .. "'")
  end
  local m = { name = name, options = {}, checkpoint = checkpoint, fit = 0 }
  local keys = {}
  if colon then
    for _, kv in ipairs(split(body:sub(colon + 1), ",")) do
      local key, value = kv:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
      if not key then bad(spec, "expected key=value, got '" .. trim(kv) .. "'") end
      if key == "fit" then
        m.fit = math.tointeger(tonumber(value))
        if not m.fit or m.fit < 1 then bad(spec, "fit=" .. value .. " is not a number of steps >= 1") end
      else
        if m.options[key] == nil then keys[#keys + 1] = key end
        m.options[key] = typed(value)
      end
    end
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(m.options[k]) end
  m.text = name .. (#parts > 0 and (":" .. table.concat(parts, ",")) or "")  -- without fit, @
  -- The plugin exists and takes these options; its capabilities decide what it needs.
  local ok, made = pcall(nas.surrogate, name, m.options)
  if not ok then bad(spec, tostring(made)) end
  m.caps = {}
  for _, c in ipairs(made:capabilities()) do m.caps[c] = true end
  if m.fit > 0 and not m.caps.trainable then
    bad(spec, string.format("fit=%d, but surrogate '%s' is not trainable", m.fit, name))
  end
  return m
end

local specs = {}
for _, raw in ipairs(split(surrogates_arg, ";")) do
  local text = trim(raw)
  if text == "" then
    error(string.format("surrogates: empty spec in '%s' (specs are ';'-separated)", surrogates_arg), 0)
  end
  local label = text
  -- preset:NAME stands for the spec of a preset evaluator (configs/NAME.lua, its `spec`).
  local preset_name = text:match("^preset:([%w_%-]+)$")
  if preset_name then
    local ok, p = pcall(nas.preset, preset_name)
    if not ok then bad(text, tostring(p)) end
    if type(p.spec) ~= "string" then bad(text, "preset '" .. preset_name .. "' has no `spec` string") end
    text = p.spec
  end
  local spec = { text = text, label = label, members = {} }
  for _, part in ipairs(split(text, "+")) do
    if trim(part) == "" then bad(text, "empty member (members are '+'-separated)") end
    spec.members[#spec.members + 1] = parse_member(trim(part), text)
  end
  specs[#specs + 1] = spec
end
if labels_arg ~= "" then
  local labels = split(labels_arg, ";")
  if #labels ~= #specs then
    error(string.format("labels: %d labels for %d surrogates ('%s')", #labels, #specs, labels_arg), 0)
  end
  for i, l in ipairs(labels) do specs[i].label = trim(l) end
end
do
  local used = {}
  for _, spec in ipairs(specs) do
    if spec.label == "" then error("labels: an empty label", 0) end
    if used[spec.label] then
      error(string.format("surrogates: '%s' names two of them; give each its own label (labels)",
        spec.label), 0)
    end
    used[spec.label] = true
  end
end

-- ---- Data, space, pool and ground truth ------------------------------------------------------
local needs_data = not real
for _, spec in ipairs(specs) do
  for _, m in ipairs(spec.members) do needs_data = needs_data or m.caps.needs_data or m.fit > 0 end
end
local data = needs_data and nas.dataset{ name = data_name } or nil
local space_options = { name = space_name, channels = channels, data = data }
if space_name == "nb201" then space_options.cells_per_stage = cells end
for _, kv in ipairs(split(nas.arg("space_options", ""), ",")) do
  if trim(kv) ~= "" then
    local key, value = kv:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
    if not key then error("space_options: expected key=value, got '" .. trim(kv) .. "'", 0) end
    space_options[key] = typed(value)
  end
end
local space = nas.space(space_options)
local space_note = {}
do
  local keys = {}
  for k, v in pairs(space_options) do if k ~= "name" and k ~= "data" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do space_note[#space_note + 1] = k .. "=" .. tostring(space_options[k]) end
  space_note = table.concat(space_note, ", ")
end

local pool, truth = {}, {}
local truth_note, truth_name
if real then
  local column = nas.arg("column", "cifar10_test")
  local rows = nas.read_csv(truth_file)
  assert(#rows > 0, truth_file .. " has no rows")
  assert(rows[1].arch and rows[1][column], string.format(
    "%s needs the columns 'arch' and '%s'", truth_file, column))
  -- A seeded subset (Fisher-Yates on a copy), the same for every surrogate and every rerun.
  local subset = nas.arg("subset", 0)
  local subset_seed = nas.arg("subset_seed", nas.seed)
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
    if type(row[column]) ~= "number" then
      error(string.format("%s: row %d: column '%s' is not a number", truth_file, order[k], column), 0)
    end
    pool[k] = space:parse(row.arch)
    truth[k] = row[column]
  end
  truth_name = column
  truth_note = string.format("Ground truth: column `%s` of `%s`, %d of its %d rows (subset seed %d).",
    column, truth_file, n, #rows, subset_seed)
else
  local train_steps = nas.arg("train_steps", 400)
  pool = space:sample(nas.arg("pool", 50))
  for i, arch in ipairs(pool) do
    local r = nas.train{ arch = arch, space = space, data = data, epochs = 1, max_steps = train_steps,
                         batch = 64, lr = 0.05, test_images = 5000, valid_images = 1000 }
    truth[i] = r.test_accuracy
    nas.log(string.format("ground truth %d/%d: %.4f%s", i, #pool, r.test_accuracy,
      r.reused and " (reused)" or ""))
  end
  truth_name = "test accuracy"
  truth_note = string.format("Ground truth: test accuracy on %s after %d SGD steps of batch 64 "
    .. "from scratch (%d architectures sampled with seed %d).", data_name, train_steps, #pool, nas.seed)
end
if #pool < 2 then error(string.format("the pool has %d architecture(s); comparing needs at least 2", #pool), 0) end

-- ---- Recorded costs ----------------------------------------------------------------------
-- compare_costs.csv: kind (fit | score), key (what was fitted / the evaluation key),
-- surrogate, seconds (of the fit / per architecture scored), archs (how many were scored when
-- measured), checkpoint (the fitted state).
local costs_file = "compare_costs.csv"
local costs, cost_order = {}, {}
do
  local ok, rows = pcall(nas.read_csv, nas.results_dir() .. "/" .. costs_file)
  if ok then
    for _, r in ipairs(rows) do
      local id = tostring(r.kind) .. "\t" .. tostring(r.key)
      if not costs[id] then cost_order[#cost_order + 1] = id end
      costs[id] = r
    end
  end
end
local function record_cost(kind, key, row)
  local id = kind .. "\t" .. key
  if not costs[id] then cost_order[#cost_order + 1] = id end
  row.kind, row.key = kind, key
  costs[id] = row
  local lines = { "kind,key,surrogate,seconds,archs,checkpoint" }
  for _, i in ipairs(cost_order) do
    local r = costs[i]
    lines[#lines + 1] = table.concat({ csv_field(r.kind), csv_field(r.key), csv_field(r.surrogate),
      string.format("%.9g", r.seconds), csv_field(r.archs or ""), csv_field(r.checkpoint or "") }, ",")
  end
  nas.write_file(costs_file, table.concat(lines, "\n") .. "\n")
end

-- ---- Fitting -----------------------------------------------------------------------------
-- A member with fit=N is fitted once per run (a spec used alone and in an ensemble shares the
-- fit), saved under checkpoints/, and loaded from there by a rerun instead of fitted again.
local fitted = {}
local function make_member(m, spec)
  local s = nas.surrogate(m.name, m.options)
  if m.checkpoint then
    local ok, err = pcall(s.load, s, m.checkpoint)
    if not ok then bad(spec, "cannot load " .. m.checkpoint .. ": " .. tostring(err)) end
  end
  return s
end
local function fit_member(m, spec)
  local key = string.format("%s%s|fit=%d|space=%s{%s}|data=%s|seed=%d", m.text,
    m.checkpoint and ("@" .. m.checkpoint) or "", m.fit, space_name, space_note, data_name, nas.seed)
  if fitted[key] then return fitted[key] end
  local s = make_member(m, spec)
  local record = costs["fit\t" .. key]
  local entry
  if record and record.checkpoint ~= "" and pcall(s.load, s, record.checkpoint) then
    nas.log(string.format("%s: fitted state loaded from %s (fitted in %.1f s)", m.text,
      record.checkpoint, record.seconds))
    entry = { surrogate = s, checkpoint = record.checkpoint, seconds = record.seconds }
  else
    nas.log(string.format("%s: fitting for %d steps of batch 64", m.text, m.fit))
    local t = nas.clock()
    s:fit{ space = space, data = data, epochs = 1000, steps = m.fit, batch = 64 }
    local seconds = nas.clock() - t
    local file = string.format("checkpoints/%s-%s.ckpt", m.name, hash(key))
    local checkpoint = s:save(file)
    nas.log(string.format("%s: fitted in %.1f s, saved to %s", m.text, seconds, checkpoint))
    record_cost("fit", key, { surrogate = m.text, seconds = seconds, checkpoint = checkpoint })
    entry = { surrogate = s, checkpoint = checkpoint, seconds = seconds }
  end
  fitted[key] = entry
  return entry
end

-- The surrogate of a spec, its fit seconds (fits done by this comparison) and its evaluation
-- spec as created.
local function build(spec)
  if #spec.members == 1 then
    local m = spec.members[1]
    if m.fit > 0 then
      local f = fit_member(m, spec.text)
      return f.surrogate, f.seconds
    end
    return make_member(m, spec.text), 0
  end
  local texts, seconds = {}, 0
  for _, m in ipairs(spec.members) do
    if m.fit > 0 then
      local f = fit_member(m, spec.text)
      seconds = seconds + f.seconds
      texts[#texts + 1] = m.text .. "@" .. f.checkpoint
    else
      texts[#texts + 1] = m.text .. (m.checkpoint and ("@" .. m.checkpoint) or "")
    end
  end
  local ok, s = pcall(nas.surrogate, "ensemble", { members = table.concat(texts, ";") })
  if not ok then bad(spec.text, tostring(s)) end
  return s, seconds
end

-- ---- Scoring -----------------------------------------------------------------------------
local results = {}
for i, spec in ipairs(specs) do
  nas.log(string.format("surrogate %d/%d: %s", i, #specs, spec.label))
  local s, fit_seconds = build(spec)
  local key = s:key{ data = data, batch = batch, images = images }
  -- What the store already holds under this key is reused, not scored again.
  local stored, seen, fresh = {}, {}, 0
  for _, r in ipairs(nas.evaluations(key, { status = "all" })) do stored[r.arch] = r end
  for _, a in ipairs(pool) do
    if not stored[a] and not seen[a] then fresh = fresh + 1 end
    seen[a] = true
  end
  local t = nas.clock()
  local scores, failed = s:score{ space = space, data = data, archs = pool, images = images,
                                  batch = batch, max_failures = 1 }
  local wall = nas.clock() - t
  local record = costs["score\t" .. key]
  if fresh > 0 and (not record or fresh >= (tonumber(record.archs) or 0)) then
    record_cost("score", key, { surrogate = spec.label, seconds = wall / fresh, archs = fresh })
    record = costs["score\t" .. key]
  end
  local per_arch, cost_note
  if record then
    per_arch = record.seconds
    cost_note = fresh > 0 and string.format("%d scored now", fresh)
      or string.format("all %d reused from the store; cost as recorded", #pool)
  else
    -- Reused scores with no recorded cost (compare_costs.csv removed): the store's own timings.
    local sum, n = 0, 0
    for _, a in ipairs(pool) do
      if stored[a] and stored[a].seconds == stored[a].seconds then sum, n = sum + stored[a].seconds, n + 1 end
    end
    per_arch = n > 0 and sum / n or 0
    cost_note = "reused; cost from the store's timings"
  end
  -- A failed architecture (NaN) ranks last: a surrogate that cannot score it gains nothing.
  local lowest = math.huge
  for _, v in ipairs(scores) do if v == v then lowest = math.min(lowest, v) end end
  if lowest == math.huge then lowest = 1 end
  for k, v in ipairs(scores) do if v ~= v then scores[k] = lowest - 1 end end
  nas.log(string.format("surrogate %d/%d: %s done, %d failed, %.4g s/arch (%s)", i, #specs,
    spec.label, #failed, per_arch, cost_note))
  results[i] = { spec = spec, key = key, scores = scores, failed = #failed, fit_seconds = fit_seconds,
                 per_arch = per_arch }
end

-- ---- Metrics, table, files -------------------------------------------------------------------
local top = math.max(1, math.floor(#pool / 10 + 0.5))
local bootstrap_options = { samples = resamples, seed = nas.seed }
local function interval(metric, scores)
  local v, lo, hi = nas.metrics.bootstrap(metric, scores, truth, bootstrap_options)
  return string.format("%.3f [%.2f, %.2f]", v, lo, hi), v
end
local header = {
  "| surrogate | Pearson | Spearman | Kendall | P@10% | failed | fit s | s / arch |",
  "| --- | --- | --- | --- | --- | --- | --- | --- |" }
local rows = {}
local csv = { "surrogate,arch,score,truth" }
for _, r in ipairs(results) do
  local pearson = interval("pearson", r.scores)
  local spearman, rho = interval("spearman", r.scores)
  local kendall, tau = interval("kendall", r.scores)
  r.spearman, r.kendall = rho, tau
  rows[#rows + 1] = string.format("| %s | %s | %s | %s | %.2f | %d | %.1f | %.4g |", md(r.spec.label),
    pearson, spearman, kendall, nas.metrics.top_k_overlap(r.scores, truth, top), r.failed,
    r.fit_seconds, r.per_arch)
  for k, arch in ipairs(pool) do
    csv[#csv + 1] = table.concat({ csv_field(r.spec.label), csv_field(arch),
      string.format("%.17g", r.scores[k]), string.format("%.12g", truth[k]) }, ",")
  end
end
local table_text = table.concat(header, "\n") .. "\n" .. table.concat(rows, "\n")
print("\n" .. table_text .. "\n")
nas.write_file("compare.csv", table.concat(csv, "\n") .. "\n")

-- ---- Plots -----------------------------------------------------------------------------------
local plots, plot_problem = {}, nil
local function try_plot(file, caption, args)
  args.file = file
  local ok, err = pcall(nas.plot, args)
  if ok then plots[#plots + 1] = string.format("![%s](%s)", caption, file)
  else plot_problem = plot_problem or tostring(err); nas.log("plot " .. file .. " not drawn: " .. tostring(err)) end
end
local panels = {}
for _, r in ipairs(results) do
  panels[#panels + 1] = { title = string.format("%s (Spearman %.3f)", r.spec.label, r.spearman),
    xlabel = truth_name, ylabel = "score",
    series = { { name = r.spec.label, x = truth, y = r.scores, style = "points" } } }
end
try_plot("scores.png", "score against ground truth, one panel per surrogate",
  { title = "Score against ground truth (" .. #pool .. " architectures)", panels = panels })

-- Kendall against cost per architecture, and the frontier: the surrogates no cheaper one beats.
local series, by_cost = {}, {}
for _, r in ipairs(results) do
  if r.kendall == r.kendall then
    local cost = math.max(r.per_arch, 1e-6)
    series[#series + 1] = { name = r.spec.label, x = { cost }, y = { r.kendall }, style = "points" }
    by_cost[#by_cost + 1] = { cost = cost, kendall = r.kendall }
  end
end
table.sort(by_cost, function(a, b) return a.cost < b.cost or (a.cost == b.cost and a.kendall > b.kendall) end)
local fx, fy, best = {}, {}, -math.huge
for _, p in ipairs(by_cost) do
  if p.kendall > best then fx[#fx + 1], fy[#fy + 1], best = p.cost, p.kendall, p.kendall end
end
if #series > 0 then
  series[#series + 1] = { name = "frontier", x = fx, y = fy, style = "linespoints" }
  try_plot("cost_quality.png", "Kendall against cost per architecture",
    { title = "Ranking quality against cost", xlabel = "scoring seconds per architecture (log)",
      ylabel = "Kendall tau against ground truth", logx = true, series = series })
end

local matrix, names = {}, {}
for i, a in ipairs(results) do
  names[i] = a.spec.label
  matrix[i] = {}
  for j, b in ipairs(results) do matrix[i][j] = nas.metrics.spearman(a.scores, b.scores) end
end
try_plot("rank_correlation.png", "Spearman rank correlation between the surrogates' scores",
  { title = "Spearman rank correlation between surrogates", matrix = matrix, labels = names,
    range = { -1, 1 } })

-- ---- Report ----------------------------------------------------------------------------------
local command = nas.command
if command == "" then
  local keys = {}
  for k in pairs(nas.args) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = { "hypernas run scripts/compare.lua" }
  for _, k in ipairs(keys) do parts[#parts + 1] = string.format("--set '%s=%s'", k, tostring(nas.args[k])) end
  parts[#parts + 1] = "--seed " .. nas.seed
  command = table.concat(parts, " ")
end
local lo, hi = math.huge, -math.huge
for _, a in ipairs(truth) do lo = math.min(lo, a); hi = math.max(hi, a) end
local specs_list = {}
for _, r in ipairs(results) do
  specs_list[#specs_list + 1] = string.format("- %s: `%s` (evaluation key `%s`)", md(r.spec.label),
    r.spec.text, r.key)
end
local report = {
  "# Surrogates compared on one pool", "",
  string.format("Pool: %d architectures of `%s` (%s)%s.", #pool, space_name, space_note,
    data and (", data " .. data_name) or ""),
  truth_note .. string.format(" Range %.4g to %.4g.", lo, hi),
  (data and string.format("Surrogates that read data score %d validation images of %s in batches "
    .. "of %d. ", images, data_name, batch) or "") .. string.format("Seed %d.", nas.seed), "",
  table_text, "",
  string.format("Intervals: percentile bootstrap, 95 %%, %d resamples. P@10%%: the share of the %d "
    .. "best-scored architectures that are among the %d best by ground truth. A failed "
    .. "architecture (NaN score) ranks last (it gets the lowest score minus 1, as in compare.csv).",
    resamples, top, top),
  "fit s: seconds of fitting done by this comparison (an ensemble: the sum over its fitted "
    .. "members; a fit shared by two surrogates counts in both). s / arch: scoring seconds per "
    .. "architecture, as measured when the scores were made (an ensemble's includes scoring its "
    .. "reference sample once) and recorded in compare_costs.csv; a rerun reuses the stored scores "
    .. "and fitted checkpoints and reports those costs.", "",
  "Surrogates:", "", table.concat(specs_list, "\n"), "",
  "## Plots", "",
}
if #plots > 0 then
  for _, p in ipairs(plots) do report[#report + 1] = p .. "\n" end
end
if plot_problem then report[#report + 1] = "Some plots were not drawn: " .. plot_problem .. "\n" end
report[#report + 1] = "## Reproduce"
report[#report + 1] = ""
report[#report + 1] = "```sh\n" .. command .. "\n```"
report[#report + 1] = ""
report[#report + 1] = "Scores per architecture: compare.csv (surrogate,arch,score,truth); costs: compare_costs.csv."
print("report: " .. nas.write_file("report.md", table.concat(report, "\n") .. "\n"))
