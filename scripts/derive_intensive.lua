-- ADWPNAS §3.1.2, intensive-space deriving: a DARTS-style search over the original 8-op space
-- (the `darts` space without `intensive`: 14 edges x 8 ops per cell type, one softmax per edge),
-- after which each epoch's intensive space O*_t keeps the K most likely non-zero ops per node
-- (normal and reduction cells each their own), and the epoch of largest superiority
-- S(O*_t) = prod_{i<=n} s(O*_{t-i}, O*_t) * acc(alpha_{t-i}) (Eqs. 2-3) gives the result.
--   1. the `adwp` surrogate generates the supernet's conv weights (a short Stage 1 warms it up
--      on CPU; the paper preset skips it, as DARTS has none),
--   2. the `gradient` strategy trains α and the GeneratingBlocks together for every epoch (cross-
--      search throughout, DARTS's joint training; α's batches from the validation split, as
--      first-order DARTS), deriving O*_t and S(O*_t) after each epoch,
--   3. the chosen space is written as intensive.json (the form the darts space's `intensive`
--      option reads; configs/adwp-intensive.json is one made by this script) and report.md.
-- Everything is recorded in the experiment's store (the epochs, each with its O*_t as JSON).
--
--   hypernas run scripts/derive_intensive.lua                      (Fashion-MNIST, CPU, ~15 min)
--   hypernas run scripts/derive_intensive.lua --set preset=paper --set data=cifar10 --device cuda

-- The paper (§4.1): 8 cells (the 14-cell space likewise), K = 6, n = 2, batch 200, 30 epochs,
-- otherwise DARTS's settings.
local presets = {
-- The CPU preset takes 120 search steps where the paper takes about 3,750 (30 epochs of 25,000
-- images in batches of 200), so its α learning rate is 10 times DARTS's 3e-4 for α to move.
  cpu = { layers = 3, channels = 8, fit_steps = 150, batch = 32, epochs = 10, steps = 12, valid_images = 500,
          alpha_lr = 3e-3 },
  paper = { layers = 8, channels = 16, fit_steps = 0, batch = 200, epochs = 30, steps = 0, valid_images = 0,
            alpha_lr = 3e-4 },
}
local preset_name = nas.arg("preset", "cpu")
local preset = presets[preset_name]
assert(preset, "preset must be cpu or paper, got '" .. tostring(preset_name) .. "'")
local function opt(key) return nas.arg(key, preset[key]) end
local k, n = nas.arg("k", 6), nas.arg("n", 2)

local data_name = nas.arg("data", "fashion-mnist")
local data = nas.dataset{ name = data_name }
local space = nas.space{ name = "darts", data = data, layers = opt("layers"), channels = opt("channels") }
local adwp = nas.surrogate("adwp", { hidden = nas.arg("hidden", 64) })
local t0 = nas.clock()
if opt("fit_steps") > 0 then  -- a warm-up; DARTS (the paper preset) trains weights and α jointly only
  adwp:fit{ space = space, data = data, epochs = 100, steps = opt("fit_steps"), batch = opt("batch") }
end
local fit_seconds = nas.clock() - t0

local t1 = nas.clock()
local epochs = opt("epochs")
local found = nas.strategy("gradient", { epochs = epochs, steps = opt("steps"), batch = opt("batch"),
  cross_start = 0, cross_end = epochs, alpha_split = "valid", valid_images = opt("valid_images"),
  alpha_lr = opt("alpha_lr"), intensive_k = k, intensive_n = n }):run{
  surrogate = adwp, space = space, data = data, eval_images = 500, eval_batch = 250 }
local search_seconds = nas.clock() - t1
assert(#found > 0 and found[1].intensive_epoch, "the search chose no intensive space")
local recorded = nas.search_epochs()
local rows = {}
for _, e in ipairs(recorded) do if e.run == recorded[#recorded].run then rows[#rows + 1] = e end end
local chosen = rows[found[1].intensive_epoch + 1]
local path = nas.write_file("intensive.json", chosen.note)
print(string.format("\nintensive space of epoch %d (superiority %.4f, relaxed validation accuracy %.2f%%): %s",
  chosen.epoch + 1, chosen.superiority, 100 * chosen.valid_accuracy, path))

local x, sup, acc = {}, {}, {}
for t, e in ipairs(rows) do
  x[t] = t; acc[t] = e.valid_accuracy; sup[t] = e.superiority or (0 / 0)
end
local sx, sy = {}, {}
for t, e in ipairs(rows) do if e.superiority then sx[#sx + 1] = t; sy[#sy + 1] = e.superiority end end
local plot = nas.plot{ file = "superiority.png", title = string.format("Superiority (K = %d, n = %d) and accuracy", k, n),
  xlabel = "epoch", ylabel = "value", series = { { name = "validation accuracy", x = x, y = acc, style = "linespoints" },
    { name = "superiority S", x = sx, y = sy, style = "linespoints" } } }
local report = { "# Intensive-space deriving", "",
  string.format("Data %s; `darts` %d cells of C = %d (no macro); K = %d, n = %d; preset `%s`; seed %d.", data_name,
    opt("layers"), opt("channels"), k, n, preset_name, nas.seed), "",
  string.format("- Stage 1 of the supernet's GeneratingBlocks: %.0f s; DARTS-style search: %.0f s for %d epochs",
    fit_seconds, search_seconds, #rows),
  string.format("- chosen: epoch %d, superiority %.4f → `%s`", chosen.epoch + 1, chosen.superiority, path:match("[^/]+$")), "",
  "| epoch | valid acc. | superiority |", "| --- | --- | --- |" }
for t, e in ipairs(rows) do
  report[#report + 1] = string.format("| %d | %.2f%% | %s |", t, 100 * e.valid_accuracy,
    e.superiority and string.format("%.4f", e.superiority) or "")
end
report[#report + 1] = ""
report[#report + 1] = string.format("![](%s)", plot:match("[^/]+$"))
print("report: " .. nas.write_file("report.md", table.concat(report, "\n") .. "\n"))
