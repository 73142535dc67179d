-- The search of Graph HyperNetworks for NAS (Zhang, Ren, Urtasun, ICLR 2019):
--   1. train a GHN on the data and space (or load a checkpoint),
--   2. sample candidates (1,000 in the paper) and score each by validation accuracy with
--      weights the GHN generates, keep the top 10,
--   3. "Top-Best": train each of the 10 briefly, pick the best by validation accuracy, train it
--      fully and report its test accuracy.
-- Everything is recorded in the experiment's store; report.md and PNG plots go beside it.
--
--   hypernas run scripts/ghn_search.lua [--set data=cifar10 --set candidates=1000 ...]
--   hypernas run scripts/ghn_search.lua --set checkpoint=results/ghn_search/ghn.ckpt

local data_name = nas.arg("data", "fashion-mnist")
local data = nas.dataset{ name = data_name }
local space = nas.space{ name = nas.arg("space", "nb201"), cells_per_stage = nas.arg("cells", 1),
                         channels = nas.arg("channels", 8), data = data }

-- The GHN with the plugin's defaults (the best setting measured on NAS-Bench-201's labels,
-- docs/benchmarks.md); any of its options can be given with --set (`propagation_steps` for its
-- `steps`), e.g. --set preset=paper for the paper's setting.
local ghn_options = {}
for _, key in ipairs{ "preset", "hidden", "hyper_hidden", "propagation", "stacked", "handoff",
                      "meta_batch", "fan_in_norm", "layer_norm", "virtual_edges", "lr",
                      "weight_decay", "grad_clip", "lr_schedule", "score_metric",
                      "finetune_steps", "finetune_lr", "init_seed" } do
  if nas.args[key] ~= nil then ghn_options[key] = nas.args[key] end
end
if nas.args.propagation_steps ~= nil then ghn_options.steps = nas.args.propagation_steps end
local ghn = nas.surrogate("ghn", ghn_options)

-- 1. The GHN.
local checkpoint = nas.arg("checkpoint", "")
local curves = {}
local t0 = nas.clock()
if checkpoint ~= "" then
  ghn:load(checkpoint)
  nas.log("loaded the GHN from " .. checkpoint)
else
  curves = ghn:fit{ space = space, data = data, steps = nas.arg("fit_steps", 600), batch = 64 }
  nas.log("GHN trained in " .. string.format("%.0f s", nas.clock() - t0) .. ", saved to " .. ghn:save("ghn.ckpt"))
end
local fit_seconds = nas.clock() - t0

-- 2. Random search scored with generated weights.
local t1 = nas.clock()
local top = nas.strategy("random", { candidates = nas.arg("candidates", 1000), keep = nas.arg("keep", 10),
                                     batch = nas.arg("score_batch", 8) })
  :run{ surrogate = ghn, space = space, data = data, eval_images = nas.arg("eval_images", 500),
        eval_batch = 250 }
local search_seconds = nas.clock() - t1

print(string.format("\n%-4s %-96s %7s %9s", "rank", "architecture", "score", "params"))
for i, c in ipairs(top) do print(string.format("%-4d %-96s %7.4f %9d", i, c.arch, c.score, c.params)) end

-- 3. Top-Best: brief training of each of the top architectures, then full training of the best.
local brief_steps = nas.arg("brief_steps", 150)
local best, best_valid = nil, -1
local brief_rows = {}
for i, c in ipairs(top) do
  local r = nas.train{ arch = c.arch, space = space, data = data, epochs = 1, max_steps = brief_steps,
                       valid_images = 2000, test_images = 1000 }
  local valid = r.valid_accuracy[#r.valid_accuracy]
  brief_rows[#brief_rows + 1] = string.format("| %d | `%s` | %.4f | %.4f |", i, (c.arch:gsub("|", "\\|")), c.score, valid)
  if valid > best_valid then best, best_valid = c, valid end
end
local final = nas.train{ arch = best.arch, space = space, data = data, epochs = nas.arg("epochs", 3) }

print(string.format("\nwinner %s\n  %d parameters, test accuracy %.2f%% after %d epochs",
  final.arch, final.params, 100 * final.test_accuracy, #final.train_loss))

-- Report: a markdown file and three plots.
local plots = {}
if curves.loss then
  plots[#plots + 1] = nas.plot{ file = "ghn_loss.png", title = "GHN training loss", xlabel = "step",
    ylabel = "cross-entropy", series = { { name = "loss", x = curves.step, y = curves.loss } } }
end
local px, py = {}, {}
for _, row in ipairs(nas.evaluations()) do
  if row.surrogate:find("^ghn{") and row.params then px[#px + 1] = row.params; py[#py + 1] = row.score end
end
-- How much of the GHN's ranking parameter count alone would give: the rank correlation
-- between the two over every candidate (1: the GHN adds nothing to counting parameters).
local vs_params = "-"
if #px > 1 then
  vs_params = string.format("Spearman %.3f, Kendall %.3f", nas.metrics.spearman(px, py),
    nas.metrics.kendall(px, py))
  plots[#plots + 1] = nas.plot{ file = "score_vs_params.png",
    title = "GHN score against parameter count (" .. vs_params .. ")",
    xlabel = "parameters", ylabel = "GHN score (generated weights)", logx = true,
    series = { { name = "candidates", x = px, y = py, style = "points" } } }
end
local epochs = {}
for i = 1, #final.train_loss do epochs[i] = i end
plots[#plots + 1] = nas.plot{ file = "winner_curve.png", title = "Winner trained from scratch",
  xlabel = "epoch", ylabel = "", series = {
    { name = "train loss", x = epochs, y = final.train_loss, style = "linespoints" },
    { name = "valid accuracy", x = epochs, y = final.valid_accuracy, style = "linespoints" } } }

local report = {
  "# GHN search", "",
  string.format("Data %s, space %s (%d candidates, seed %d).", data_name, space:name(), #px, nas.seed), "",
  string.format("- GHN training: %.0f s%s", fit_seconds, checkpoint ~= "" and (" (loaded " .. checkpoint .. ")") or ""),
  string.format("- scoring: %.0f s for %d candidates (%.3f s each)", search_seconds, #px, search_seconds / math.max(1, #px)),
  string.format("- GHN score against parameter count over the candidates: %s", vs_params),
  string.format("- GHN options: `%s`", ghn:key{}:match("^ghn(%b{})") or ""),
  string.format("- winner: `%s`, %d parameters, **test accuracy %.2f%%** after %d epochs",
    final.arch, final.params, 100 * final.test_accuracy, #final.train_loss), "",
  "## Top-Best", "", "| rank | architecture | GHN score | valid accuracy after brief training |",
  "| --- | --- | --- | --- |", table.concat(brief_rows, "\n"), "", "## Plots", "" }
for _, p in ipairs(plots) do report[#report + 1] = string.format("![](%s)", p:match("[^/]+$")) end
print("\nreport: " .. nas.write_file("report.md", table.concat(report, "\n") .. "\n"))
