-- ADWPNAS (Zhang, Chen, Gu): architecture-driven weight prediction, end to end.
--   0. the intensive space O* (K candidate ops per node, normal and reduction cells): the shipped
--      configs/adwp-intensive.json, or --set intensive=<file> (scripts/derive_intensive.lua
--      derives one with the superiority score),
--   1. Stage 1: the `adwp` surrogate's GeneratingBlocks trained with random architecture
--      parameters every step (one α per cell: macro search),
--   2. Stage 2: the `gradient` strategy: basic-search (α by Adam), cross-search (α and the
--      GeneratingBlocks), basic-search again; the final α gives the architecture (T = 2 ops per
--      node),
--   3. the winner trained from scratch, and for reference a random architecture of the same
--      intensive space with the same recipe,
--   4. report.md with plots (Stage 1 loss, α's softmax per cell, node and candidate over the
--      epochs as a heat map, the validation accuracy during the search, the winner's learning
--      curve) and the derived genotype as JSON and as a Graphviz DOT file.
-- Everything is recorded in the experiment's store: a rerun resumes the search where it stopped
-- and reuses the trainings.
--
--   hypernas run scripts/adwp_search.lua                          (Fashion-MNIST, CPU, ~15 min)
--   hypernas run scripts/adwp_search.lua --set preset=paper8 --set data=cifar10 --device cuda
--   hypernas run scripts/adwp_search.lua --set preset=paper14 --set data=cifar10 --device cuda

-- The paper's settings (§4.2): 8 or 14 cells of C = 16, batch 98, Stage 1 for 60 epochs,
-- cross-search in [30, 40) of the 60 search epochs; the winner trained for 600 epochs in DARTS's
-- recipe is out of scope here (the presets train it 10 epochs).
local presets = {
  cpu = { layers = 5, channels = 8, fit_steps = 250, fit_epochs = 100, batch = 32, epochs = 10,
          steps = 10, cross_start = 5, cross_end = 7, valid_images = 500, train_epochs = 4,
          train_epoch_steps = 50, eval_images = 1000 },
  paper8 = { layers = 8, channels = 16, fit_steps = 0, fit_epochs = 60, batch = 98, epochs = 60,
             steps = 0, cross_start = 30, cross_end = 40, valid_images = 0, train_epochs = 10,
             train_epoch_steps = 0, eval_images = 0 },
  paper14 = { layers = 14, channels = 16, fit_steps = 0, fit_epochs = 60, batch = 98, epochs = 60,
              steps = 0, cross_start = 30, cross_end = 40, valid_images = 0, train_epochs = 10,
              train_epoch_steps = 0, eval_images = 0 },
}
local preset_name = nas.arg("preset", "cpu")
local preset = presets[preset_name]
assert(preset, "preset must be cpu, paper8 or paper14, got '" .. tostring(preset_name) .. "'")
local function opt(key) return nas.arg(key, preset[key]) end

local data_name = nas.arg("data", "fashion-mnist")
local data = nas.dataset{ name = data_name }
local intensive = nas.arg("intensive", "")
if intensive == "" then intensive = nas.config_file("adwp-intensive.json") end
local space = nas.space{ name = "darts", data = data, macro = true, layers = opt("layers"),
                         channels = opt("channels"), intensive = intensive }
local relaxation = space:relaxation()

-- 1. Stage 1.
local adwp_options = {}
for _, key in ipairs{ "hidden", "activation", "alpha_std", "lr", "momentum", "weight_decay", "cosine",
                      "onehot_prob" } do
  if nas.args[key] ~= nil then adwp_options[key] = nas.args[key] end
end
local adwp = nas.surrogate("adwp", adwp_options)
local timing = {}
local t0 = nas.clock()
local checkpoint = nas.arg("checkpoint", "")
local fit_curves = {}
if checkpoint ~= "" then
  adwp:load(checkpoint)
  nas.log("loaded the GeneratingBlocks from " .. checkpoint)
else
  fit_curves = adwp:fit{ space = space, data = data, epochs = opt("fit_epochs"), steps = opt("fit_steps"),
                         batch = opt("batch") }
  nas.log("GeneratingBlocks saved to " .. adwp:save("adwp.ckpt"))
end
timing.fit = nas.clock() - t0

-- 2. Stage 2.
local t1 = nas.clock()
local eval_images = opt("eval_images")
local search_options = { epochs = opt("epochs"), steps = opt("steps"), batch = opt("batch"),
                         cross_start = opt("cross_start"), cross_end = opt("cross_end"),
                         valid_images = opt("valid_images") }
for _, key in ipairs{ "alpha_lr", "alpha_wd", "init_std", "gb_lr", "alpha_split", "keep" } do
  if nas.args[key] ~= nil then search_options[key] = nas.args[key] end
end
local found = nas.strategy("gradient", search_options):run{ surrogate = adwp, space = space, data = data,
                                                            eval_images = eval_images, eval_batch = 250 }
timing.search = nas.clock() - t1
assert(#found > 0, "the gradient search returned no architecture")
local winner
for _, c in ipairs(found) do if c.final == 1 then winner = c end end
winner = winner or found[1]
local recorded = nas.search_epochs()  -- the latest run last
local epochs = {}
for _, e in ipairs(recorded) do
  if e.run == recorded[#recorded].run then epochs[#epochs + 1] = e end
end
print(string.format("\nderived after %d epochs (relaxed validation accuracy %.2f%%, adwp score %.2f%%):\n%s",
  #epochs, 100 * winner.relaxed_valid_accuracy, 100 * winner.score, winner.arch))

-- 3. Train the winner and a random architecture of the same space with one recipe.
local recipe = { epochs = opt("train_epochs"), epoch_steps = opt("train_epoch_steps"), batch = 64,
                 valid_images = nas.arg("train_valid_images", 2000), test_images = nas.arg("test_images", 0) }
local function train(arch)
  return nas.train{ arch = arch, space = space, data = data, epochs = recipe.epochs, epoch_steps = recipe.epoch_steps,
                    batch = recipe.batch, valid_images = recipe.valid_images, test_images = recipe.test_images }
end
local t2 = nas.clock()
local trained = train(winner.arch)
print(string.format("winner trained from scratch: test accuracy %.2f%% (%d parameters)", 100 * trained.test_accuracy,
  trained.params))
local baseline = train(space:sample(1)[1])
print(string.format("random architecture of the same space, same recipe: test accuracy %.2f%%",
  100 * baseline.test_accuracy))
timing.train = nas.clock() - t2

-- 4. The genotype as JSON and DOT.
local function parse_genotype(text)
  local cells = {}
  for label, body in text:gmatch("(%w+)=%[(.-)%]") do
    local index = tonumber(label:match("%d+"))
    local nodes = {}
    if body:find("|", 1, true) then
      for group in (body .. "|"):gmatch("(.-)|") do
        local inputs = {}
        for op, from in group:gmatch("%(([%w_]+),(%d+)%)") do inputs[#inputs + 1] = { op = op, from = tonumber(from) } end
        nodes[#nodes + 1] = inputs
      end
    else
      local pairs_list = {}
      for op, from in body:gmatch("%(([%w_]+),(%d+)%)") do pairs_list[#pairs_list + 1] = { op = op, from = tonumber(from) } end
      for k = 1, #pairs_list, 2 do nodes[#nodes + 1] = { pairs_list[k], pairs_list[k + 1] } end
    end
    cells[#cells + 1] = { index = index, nodes = nodes }
  end
  return cells
end
local layers = opt("layers")
local function is_reduction(i) return i == layers // 3 or i == 2 * layers // 3 end
local genotype = parse_genotype(winner.arch)
local json_cells = {}
for _, cell in ipairs(genotype) do
  local nodes = {}
  for k, inputs in ipairs(cell.nodes) do
    local parts = {}
    for _, input in ipairs(inputs) do parts[#parts + 1] = string.format('{"op": "%s", "from": %d}', input.op, input.from) end
    nodes[k] = string.format('      {"node": %d, "inputs": [%s]}', k + 1, table.concat(parts, ", "))
  end
  json_cells[#json_cells + 1] = string.format('    {"cell": %d, "reduction": %s, "nodes": [\n%s\n    ]}', cell.index,
    tostring(is_reduction(cell.index)), table.concat(nodes, ",\n"))
end
local genotype_json = nas.write_file("genotype.json", string.format(
  '{\n  "space": "darts",\n  "macro": true,\n  "layers": %d,\n  "channels": %d,\n  "text": "%s",\n  "test_accuracy": %.6f,\n  "cells": [\n%s\n  ]\n}\n',
  layers, opt("channels"), winner.arch, trained.test_accuracy, table.concat(json_cells, ",\n")))
local dot = { "digraph genotype {", "  rankdir=LR;", "  node [shape=box, style=rounded];" }
for _, cell in ipairs(genotype) do
  local c = "c" .. cell.index
  dot[#dot + 1] = string.format('  subgraph cluster_%s { label="cell %d%s";', c, cell.index,
    is_reduction(cell.index) and " (reduction)" or "")
  dot[#dot + 1] = string.format('    %s_0 [label="c_{k-2}"]; %s_1 [label="c_{k-1}"]; %s_out [label="concat"];', c, c, c)
  for k, inputs in ipairs(cell.nodes) do
    dot[#dot + 1] = string.format('    %s_%d [label="%d"];', c, k + 1, k + 1)
    for _, input in ipairs(inputs) do
      dot[#dot + 1] = string.format('    %s_%d -> %s_%d [label="%s"];', c, input.from, c, k + 1, input.op)
    end
    dot[#dot + 1] = string.format("    %s_%d -> %s_out;", c, k + 1, c)
  end
  dot[#dot + 1] = "  }"
end
dot[#dot + 1] = "}"
local genotype_dot = nas.write_file("genotype.dot", table.concat(dot, "\n") .. "\n")

-- Plots.
local plots = {}
if fit_curves.loss then
  plots[#plots + 1] = nas.plot{ file = "stage1_loss.png", title = "Stage 1: GeneratingBlocks, random architecture parameters",
    xlabel = "step", ylabel = "cross-entropy", series = { { name = "loss", x = fit_curves.step, y = fit_curves.loss } } }
end
-- α's softmax (per node, over its K candidates) for every cell, node and candidate, per epoch.
local rows, labels, columns = {}, {}, {}
for t = 1, #epochs do columns[t] = tostring(t) end
local label_of = {}  -- "block:row:col" -> the candidate's label ("c3.n2: sep_conv_3x3~1")
for _, m in ipairs(relaxation.mixes) do
  label_of[m.block .. ":" .. m.row .. ":" .. m.col] = label_of[m.block .. ":" .. m.row .. ":" .. m.col] or m.label
end
for b, block in ipairs(epochs[1].alphas) do
  for r = 1, #block do
    for c = 1, #block[r] do
      local row = {}
      for t, e in ipairs(epochs) do
        local logits = e.alphas[b][r]
        local max, sum = -math.huge, 0
        for _, v in ipairs(logits) do max = math.max(max, v) end
        for _, v in ipairs(logits) do sum = sum + math.exp(v - max) end
        row[t] = math.exp(logits[c] - max) / sum
      end
      rows[#rows + 1] = row
      labels[#labels + 1] = label_of[b .. ":" .. r .. ":" .. c] or
        string.format("%s row %d col %d", relaxation.blocks[b].name, r, c)
    end
  end
end
plots[#plots + 1] = nas.plot{ file = "alpha_heatmap.png",
  title = "softmax(alpha) per cell, node and candidate (rows) over the search epochs (columns)",
  matrix = rows, labels = labels, column_labels = columns, digits = -1 }
local ex, ev, et, phase_x, phase_y = {}, {}, {}, {}, {}
for t, e in ipairs(epochs) do
  ex[t] = t; ev[t] = e.valid_accuracy; et[t] = e.train_accuracy
  if e.phase == "cross" then phase_x[#phase_x + 1] = t; phase_y[#phase_y + 1] = e.valid_accuracy end
end
plots[#plots + 1] = nas.plot{ file = "search_accuracy.png", title = "Relaxed network during the search",
  xlabel = "epoch", ylabel = "accuracy", series = { { name = "validation", x = ex, y = ev, style = "linespoints" },
    { name = "training batches", x = ex, y = et, style = "linespoints" },
    { name = "cross-search epochs", x = phase_x, y = phase_y, style = "points" } } }
local cx, cv, cb = {}, {}, {}
for i, v in ipairs(trained.valid_accuracy) do cx[i] = i * math.max(recipe.epoch_steps, 1); cv[i] = v end
for i, v in ipairs(baseline.valid_accuracy) do cb[i] = v end
plots[#plots + 1] = nas.plot{ file = "winner_curve.png", title = "Trained from scratch: validation accuracy",
  xlabel = recipe.epoch_steps > 0 and "step" or "epoch", ylabel = "accuracy",
  series = { { name = "winner", x = cx, y = cv, style = "linespoints" },
             { name = "random architecture", x = cx, y = cb, style = "linespoints" } } }

-- Report.
local report = {
  "# ADWP search", "",
  string.format("Data %s; space `darts` macro, %d cells of C = %d, intensive space `%s`; preset `%s`; seed %d.",
    data_name, layers, opt("channels"), intensive, preset_name, nas.seed), "",
  string.format("- Stage 1 (GeneratingBlocks): %.0f s%s", timing.fit,
    checkpoint ~= "" and (" (loaded " .. checkpoint .. ")") or string.format(", %d steps of batch %d",
      fit_curves.step and #fit_curves.step or 0, opt("batch"))),
  string.format("- Stage 2 (gradient search): %.0f s for %d epochs of %d steps, cross-search in epochs [%d, %d)",
    timing.search, #epochs, opt("steps"), opt("cross_start"), opt("cross_end")),
  string.format("- training from scratch: %.0f s for two networks (%d epochs of %d steps, batch %d)", timing.train,
    recipe.epochs, recipe.epoch_steps, recipe.batch), "",
  "## Result", "",
  "| network | relaxed valid. acc. | adwp score | test accuracy | parameters |", "| --- | --- | --- | --- | --- |",
  string.format("| derived (final α) | %.2f%% | %.2f%% | %.2f%% | %d |", 100 * winner.relaxed_valid_accuracy,
    100 * winner.score, 100 * trained.test_accuracy, trained.params),
  string.format("| random of the same space | | | %.2f%% | %d |", 100 * baseline.test_accuracy, baseline.params), "",
  "Derived genotype:", "", "```", winner.arch, "```", "",
  string.format("Files: `%s`, `%s` (render with `dot -Tpng genotype.dot -o genotype.png`).",
    genotype_json:match("[^/]+$"), genotype_dot:match("[^/]+$")), "",
  "## Search epochs", "",
  "| epoch | phase | train loss | train acc. | valid loss | valid acc. | derived architecture changed |",
  "| --- | --- | --- | --- | --- | --- | --- |" }
for t, e in ipairs(epochs) do
  report[#report + 1] = string.format("| %d | %s | %.4f | %.2f%% | %.4f | %.2f%% | %s |", t, e.phase, e.train_loss,
    100 * e.train_accuracy, e.valid_loss, 100 * e.valid_accuracy,
    (t > 1 and e.arch ~= epochs[t - 1].arch) and "yes" or "")
end
report[#report + 1] = ""
report[#report + 1] = "## Plots"
report[#report + 1] = ""
for _, p in ipairs(plots) do report[#report + 1] = string.format("![](%s)", p:match("[^/]+$")) end
print(string.format("\nwinner: test accuracy %.2f%% (random of the same space %.2f%%)", 100 * trained.test_accuracy,
  100 * baseline.test_accuracy))
print("report: " .. nas.write_file("report.md", table.concat(report, "\n") .. "\n"))
