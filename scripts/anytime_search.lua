-- Anytime search with Graph HyperNetworks (Zhang, Ren, Urtasun, ICLR 2019, §5.2): networks with
-- early exits, judged by accuracy as a function of the FLOPs spent.
--   1. train a GHN on the `anytime` space (multi-scale cells, exits on some nodes; the GHN sees
--      each node's scale and exit role and learns on the mean of the exits' losses),
--   2. the `anytime` strategy: sample candidates, score every exit of each with generated
--      weights, rank by the area under the accuracy-vs-FLOPs step curve, keep the best and the
--      Pareto front of all exits,
--   3. train the top candidates from scratch (the losses of all exits summed, MSDNet's way) and,
--      with the same recipe, two baselines: the best of a few random anytime networks and a
--      hand-made chain with an exit after each stage,
--   4. report.md with the curves, the front and the tables.
-- Everything is recorded in the experiment's store: a rerun reuses scores and trainings.
--
--   hypernas run scripts/anytime_search.lua                      (Fashion-MNIST, CPU, ~20 min)
--   hypernas run scripts/anytime_search.lua --set data=cifar10 --set nodes=24,16,8 --set channels=16

local data_name = nas.arg("data", "fashion-mnist")
local data = nas.dataset{ name = data_name }
local space_options = { name = "anytime", data = data, nodes = tostring(nas.arg("nodes", "8,6,4")),
                        channels = nas.arg("channels", 8), scales = nas.arg("scales", 3),
                        max_inputs = nas.arg("max_inputs", 2), exit_prob = nas.arg("exit_prob", 0.25) }
local space = nas.space(space_options)

-- The GHN: the plugin's defaults plus the scale and exit-role embedding; any option by --set.
local ghn_options = { scale_embed = nas.arg("scale_embed", true) }
for _, key in ipairs{ "preset", "hidden", "hyper_hidden", "propagation", "stacked", "meta_batch",
                      "fan_in_norm", "layer_norm", "lr", "exit_weights", "shape_embed", "prune",
                      "init_seed" } do
  if nas.args[key] ~= nil then ghn_options[key] = nas.args[key] end
end
local ghn = nas.surrogate("ghn", ghn_options)

local timing = {}
local t0 = nas.clock()
local checkpoint = nas.arg("checkpoint", "")
local curves = {}
if checkpoint ~= "" then
  ghn:load(checkpoint)
  nas.log("loaded the GHN from " .. checkpoint)
else
  curves = ghn:fit{ space = space, data = data, epochs = 100, steps = nas.arg("fit_steps", 2000), batch = 64 }
  nas.log("GHN saved to " .. ghn:save("ghn.ckpt"))
end
timing.fit = nas.clock() - t0

-- 2. The anytime search.
local t1 = nas.clock()
local eval_images = nas.arg("eval_images", 1000)
local found = nas.strategy("anytime", { candidates = nas.arg("candidates", 200), keep = nas.arg("keep", 3),
                                       batch = nas.arg("score_batch", 8), axis = nas.arg("axis", "linear"),
                                       flops_min = nas.arg("flops_min", 0), flops_max = nas.arg("flops_max", 0) })
  :run{ surrogate = ghn, space = space, data = data, eval_images = eval_images, eval_batch = 250 }
timing.search = nas.clock() - t1
assert(#found > 0, "the anytime search scored no candidate")
local lo, hi = found[1].flops_lo, found[1].flops_hi
local axis = nas.arg("axis", "linear")
local key = ghn:key{ data = data, images = eval_images, batch = 250 }

local function exits_text(exits)
  local parts = {}
  for _, e in ipairs(exits) do parts[#parts + 1] = string.format("%.1f%%@%.2fM", 100 * e.accuracy, e.flops / 1e6) end
  return table.concat(parts, " ")
end

local winners = {}
for _, c in ipairs(found) do if c.kept == 1 then winners[#winners + 1] = c end end
print(string.format("\nFLOPs range [%.2fM, %.2fM] (%s axis); %d returned, %d on the front", lo / 1e6, hi / 1e6,
  axis, #found, #found - #winners))
print(string.format("%-4s %7s  %-60s", "rank", "area", "predicted accuracy per exit @ FLOPs"))
for i, c in ipairs(winners) do print(string.format("%-4d %7.4f  %s", i, c.auc, exits_text(c.exits))) end

-- 3. Training from scratch, winners and baselines with one recipe.
local recipe = { epochs = nas.arg("epochs", 1), max_steps = nas.arg("train_steps", 300), batch = 64,
                 valid_images = nas.arg("valid_images", 2000), test_images = nas.arg("test_images", 0) }
if nas.args.train_exit_weights then recipe.exit_weights = nas.args.train_exit_weights end
local function train(arch)
  local r = nas.train{ arch = arch, space = space, data = data, epochs = recipe.epochs,
                       max_steps = recipe.max_steps, batch = recipe.batch, valid_images = recipe.valid_images,
                       test_images = recipe.test_images, exit_weights = recipe.exit_weights }
  r.exits = r.exits or { { accuracy = r.test_accuracy, flops = r.flops } }
  r.auc = nas.metrics.anytime_auc(r.exits, { lo = lo, hi = hi, axis = axis })
  return r
end

local t2 = nas.clock()
local trained = {}
for i, c in ipairs(winners) do
  local r = train(c.arch)
  r.predicted_auc = c.auc
  r.predicted = c.exits
  trained[i] = r
  print(string.format("winner %d trained: area %.4f, test accuracy per exit %s", i, r.auc, exits_text(r.exits)))
end
timing.train_winners = nas.clock() - t2

-- Baseline 1: the best of a few random anytime networks, trained the same way.
local t3 = nas.clock()
local random_best
for i, arch in ipairs(space:sample(nas.arg("random_baselines", 3))) do
  local r = train(arch)
  print(string.format("random %d trained: area %.4f, %s", i, r.auc, exits_text(r.exits)))
  if not random_best or r.auc > random_best.auc then random_best = r end
end
-- Baseline 2: a chain of conv 3x3 nodes, stage k at scale k (MSDNet's coarsening), one exit at
-- the end of every stage.
local cells = {}
local stage = 0
for count in tostring(space_options.nodes):gmatch("%d+") do
  local nodes = {}
  for j = 1, tonumber(count) do
    nodes[j] = string.format("conv3x3@%d:%d%s", math.min(stage, space_options.scales - 1), j - 1,
      j == tonumber(count) and "!" or "")
  end
  cells[#cells + 1] = table.concat(nodes, ";")
  stage = stage + 1
end
local chain = train(table.concat(cells, "/"))
print(string.format("chain trained: area %.4f, %s", chain.auc, exits_text(chain.exits)))
timing.baselines = nas.clock() - t3

-- 4. Plots and report.
local function step_curve(exits)
  local sorted = {}
  for _, e in ipairs(exits) do sorted[#sorted + 1] = e end
  table.sort(sorted, function(a, b) return a.flops < b.flops end)
  local x, y, best = {}, {}, 0
  for _, e in ipairs(sorted) do
    if e.flops < hi then
      x[#x + 1] = math.max(e.flops, lo); y[#y + 1] = best
      best = math.max(best, e.accuracy)
      x[#x + 1] = math.max(e.flops, lo); y[#y + 1] = best
    end
  end
  x[#x + 1] = hi; y[#y + 1] = best
  return x, y
end
local function series(name, exits, style)
  local x, y = step_curve(exits)
  return { name = name, x = x, y = y, style = style or "lines" }
end

local plots = {}
if curves.loss then
  plots[#plots + 1] = nas.plot{ file = "ghn_loss.png", title = "GHN training loss (mean over exits)",
    xlabel = "step", ylabel = "cross-entropy", series = { { name = "loss", x = curves.step, y = curves.loss } } }
end
local pred_series = {}
for i, r in ipairs(trained) do
  pred_series[#pred_series + 1] = series(string.format("winner %d predicted", i), r.predicted)
  pred_series[#pred_series + 1] = series(string.format("winner %d trained", i), r.exits, "linespoints")
end
plots[#plots + 1] = nas.plot{ file = "winners_curves.png", title = "Winners: GHN-predicted and trained accuracy vs FLOPs",
  xlabel = "FLOPs", ylabel = "accuracy of the best affordable exit", series = pred_series }

local px, py, points = {}, {}, {}
for _, row in ipairs(nas.evaluations(key)) do
  local k = 0
  while row["exit" .. k .. "_flops"] do
    local p = { flops = row["exit" .. k .. "_flops"], accuracy = row["exit" .. k .. "_accuracy"] }
    points[#points + 1] = p; px[#px + 1] = p.flops; py[#py + 1] = p.accuracy
    k = k + 1
  end
end
local fx, fy = {}, {}
for _, p in ipairs(nas.metrics.pareto_front(points)) do fx[#fx + 1] = p.flops; fy[#fy + 1] = p.accuracy end
plots[#plots + 1] = nas.plot{ file = "pareto_front.png",
  title = string.format("Every exit of %d candidates (GHN-predicted) and their Pareto front", #nas.evaluations(key)),
  xlabel = "FLOPs", ylabel = "predicted accuracy", series = {
    { name = "exits", x = px, y = py, style = "points" }, { name = "Pareto front", x = fx, y = fy, style = "linespoints" } } }

local cmp = { series("random best (trained)", random_best.exits, "linespoints"),
              series("chain, exit per stage (trained)", chain.exits, "linespoints") }
for i, r in ipairs(trained) do table.insert(cmp, 1, series(string.format("winner %d (trained)", i), r.exits, "linespoints")) end
plots[#plots + 1] = nas.plot{ file = "trained_vs_baselines.png", title = "Trained from scratch: winners and baselines",
  xlabel = "FLOPs", ylabel = "test accuracy of the best affordable exit", series = cmp }

local function exit_rows(predicted, actual)
  local rows = {}
  for k, e in ipairs(actual) do
    rows[#rows + 1] = string.format("%d: %.2fM FLOPs, %s%.2f%%", k - 1, e.flops / 1e6,
      predicted and string.format("predicted %.2f%%, trained ", 100 * predicted[k].accuracy) or "", 100 * e.accuracy)
  end
  return table.concat(rows, "; ")
end
local scored = #nas.evaluations(key)
local report = {
  "# Anytime search", "",
  string.format("Data %s; space `anytime` nodes %s, channels %d, scales %d, exit_prob %s; seed %d.", data_name,
    space_options.nodes, space_options.channels, space_options.scales, tostring(space_options.exit_prob), nas.seed), "",
  string.format("- GHN training: %.0f s%s; options `%s`", timing.fit,
    checkpoint ~= "" and (" (loaded " .. checkpoint .. ")") or "", ghn:key{}:match("^ghn(%b{})") or ""),
  string.format("- search: %.0f s for %d candidates (%.3f s each: generation and every exit's accuracy on %d images)",
    timing.search, scored, timing.search / math.max(1, scored), eval_images),
  string.format("- area under the curve over FLOPs [%.3fM, %.3fM], %s axis", lo / 1e6, hi / 1e6, axis),
  string.format("- training: %.0f s for the winners, %.0f s for the baselines (recipe: %d SGD steps of batch %d, exit losses summed)",
    timing.train_winners, timing.baselines, recipe.max_steps, recipe.batch), "",
  "## Winners (trained from scratch)", "",
  "| rank | architecture | predicted area | trained area | exits |", "| --- | --- | --- | --- | --- |" }
for i, r in ipairs(trained) do
  report[#report + 1] = string.format("| %d | `%s` | %.4f | %.4f | %s |", i, r.arch, r.predicted_auc, r.auc,
    exit_rows(r.predicted, r.exits))
end
report[#report + 1] = ""
report[#report + 1] = "## Baselines (same recipe)"
report[#report + 1] = ""
report[#report + 1] = "| network | trained area | exits |"
report[#report + 1] = "| --- | --- | --- |"
report[#report + 1] = string.format("| best of %d random: `%s` | %.4f | %s |", nas.arg("random_baselines", 3),
  random_best.arch, random_best.auc, exit_rows(nil, random_best.exits))
report[#report + 1] = string.format("| chain, exit per stage: `%s` | %.4f | %s |", chain.arch, chain.auc,
  exit_rows(nil, chain.exits))
report[#report + 1] = ""
report[#report + 1] = "## Plots"
report[#report + 1] = ""
for _, p in ipairs(plots) do report[#report + 1] = string.format("![](%s)", p:match("[^/]+$")) end

print(string.format("\nwinner 1: trained area %.4f (random best %.4f, chain %.4f)", trained[1].auc, random_best.auc, chain.auc))
print("report: " .. nas.write_file("report.md", table.concat(report, "\n") .. "\n"))
