-- Anytime ranking benchmark: does the GHN's predicted area under the accuracy-vs-FLOPs curve
-- rank anytime networks as training them does?
--
--   hypernas run scripts/bench/anytime_ranking.lua --experiment anytime-ranking \
--     [--set pool=30 --set fit_steps=2000 --set train_steps=300 --set test_images=0
--      --set checkpoint=... --set nodes=8,6,4 --set channels=8]
--
-- Trains a GHN on the `anytime` space (or loads `checkpoint`), scores `pool` random anytime
-- networks with the `anytime` strategy (every exit's accuracy with generated weights), trains
-- each from scratch with one fixed recipe (the exits' losses summed), and compares, over the
-- same FLOPs range, the predicted and the trained areas: Pearson, Spearman and Kendall with
-- percentile-bootstrap 95 % intervals (1,000 resamples), next to what parameter count, FLOPs and
-- the GHN's final-exit accuracy alone give. Trainings and scores are stored in the experiment
-- and reused by reruns. Writes anytime_ranking.md, anytime_ranking.csv and a scatter plot.

local data = nas.dataset{ name = nas.arg("data", "fashion-mnist") }
local space_options = { name = "anytime", data = data, nodes = tostring(nas.arg("nodes", "8,6,4")),
                        channels = nas.arg("channels", 8), scales = nas.arg("scales", 3),
                        max_inputs = nas.arg("max_inputs", 2), exit_prob = nas.arg("exit_prob", 0.25) }
local space = nas.space(space_options)
local ghn = nas.surrogate("ghn", { scale_embed = nas.arg("scale_embed", true) })

local t0 = nas.clock()
local checkpoint = nas.arg("checkpoint", "")
if checkpoint ~= "" then ghn:load(checkpoint)
else
  ghn:fit{ space = space, data = data, epochs = 100, steps = nas.arg("fit_steps", 2000), batch = 64 }
  nas.log("GHN saved to " .. ghn:save("ghn.ckpt"))
end
local fit_seconds = nas.clock() - t0

local pool = nas.arg("pool", 30)
local eval_images = nas.arg("eval_images", 1000)
local t1 = nas.clock()
local scored = nas.strategy("anytime", { candidates = pool, keep = pool, batch = 8 })
  :run{ surrogate = ghn, space = space, data = data, eval_images = eval_images, eval_batch = 250 }
local score_seconds = nas.clock() - t1
local lo, hi = scored[1].flops_lo, scored[1].flops_hi

local epochs, train_steps = nas.arg("epochs", 1), nas.arg("train_steps", 300)
local rows, predicted, trained, params, flops, final = {}, {}, {}, {}, {}, {}
local train_seconds = 0
for i, c in ipairs(scored) do
  local r = nas.train{ arch = c.arch, space = space, data = data, epochs = epochs, max_steps = train_steps,
                       batch = 64, valid_images = 1000, test_images = nas.arg("test_images", 0) }
  if not r.reused then train_seconds = train_seconds + r.seconds end
  local exits = r.exits or { { accuracy = r.test_accuracy, flops = r.flops } }
  local area = nas.metrics.anytime_auc(exits, { lo = lo, hi = hi })
  predicted[i], trained[i], params[i], flops[i], final[i] = c.auc, area, c.params, c.flops, c.final_accuracy
  rows[#rows + 1] = string.format("%s,%.6f,%.6f,%.6f,%.6f,%d,%d,%d", c.arch, c.auc, area, c.final_accuracy,
    r.test_accuracy, #exits, c.params, c.flops)
  nas.log(string.format("%d/%d: predicted area %.4f, trained %.4f", i, #scored, c.auc, area))
end

local lines = {
  "# Anytime ranking: GHN-predicted against trained area under the accuracy-vs-FLOPs curve", "",
  string.format("%d anytime networks (nodes %s, channels %d, exit_prob %s), FLOPs range [%.3fM, %.3fM]; " ..
    "GHN fit %.0f s, scoring %.2f s per network (%d images, every exit), training %.0f s in all (%d SGD steps of 64 each).",
    #scored, space_options.nodes, space_options.channels, tostring(space_options.exit_prob), lo / 1e6, hi / 1e6,
    fit_seconds, score_seconds / #scored, eval_images, train_seconds, train_steps), "",
  "| predictor of the trained area | Pearson [95 %] | Spearman [95 %] | Kendall [95 %] |", "| --- | --- | --- | --- |" }
for _, m in ipairs{ { "GHN predicted area", predicted }, { "GHN final-exit accuracy", final },
                    { "parameter count", params }, { "FLOPs", flops } } do
  local cells = {}
  for _, metric in ipairs{ "pearson", "spearman", "kendall" } do
    local v, l, h = nas.metrics.bootstrap(metric, m[2], trained, { seed = 0 })
    cells[#cells + 1] = string.format("%.3f [%.3f, %.3f]", v, l, h)
  end
  lines[#lines + 1] = string.format("| %s | %s |", m[1], table.concat(cells, " | "))
end
nas.write_file("anytime_ranking.csv",
  "arch,predicted_auc,trained_auc,predicted_final_accuracy,trained_final_accuracy,exits,params,flops\n" ..
  table.concat(rows, "\n") .. "\n")
local png = nas.plot{ file = "anytime_ranking.png", title = "Predicted against trained anytime area",
  xlabel = "GHN-predicted area", ylabel = "trained area", series = {
    { name = "networks", x = predicted, y = trained, style = "points" } } }
lines[#lines + 1] = ""
lines[#lines + 1] = "![](" .. png:match("[^/]+$") .. ")"
local text = table.concat(lines, "\n") .. "\n"
print(text)
print("written: " .. nas.write_file("anytime_ranking.md", text))
