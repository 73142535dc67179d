-- ADWP's gradient search on NAS-Bench-201 (CIFAR-10), judged by the published 200-epoch accuracy
-- of the cell it derives, next to random search with the same surrogate at the same cost.
--
--   hypernas run scripts/bench/adwp_nb201.lua --experiment adwp-nb201 --threads 2 \
--     --set truth=../shared/data/nb201/accuracy.csv [--set seeds=0,1,2 --set fit_steps=300 ...]
--
-- For every seed: the `adwp` surrogate (init_seed = the seed) is fitted (Stage 1) on the relaxed
-- NB201 network at a reduced size (`cells`, `channels`); the `gradient` strategy searches α
-- (basic-search, cross-search in [cross_start, cross_end), basic-search); the derived cell's
-- accuracy is looked up. Then `random` with the same fitted surrogate scores as many cells as
-- the gradient search's wall time would have paid for (at the measured cost per scored cell) and
-- keeps its best-scored cell. Only this script reads the accuracies (`column` of `truth`); the
-- surrogate and both strategies see cells and images. Writes adwp_nb201.md beside the store.
local truth_file = nas.arg("truth", "")
assert(truth_file ~= "", "--set truth=../shared/data/nb201/accuracy.csv (the published accuracies)")
local column = nas.arg("column", "cifar10_test")
local accuracy = {}
for _, row in ipairs(nas.read_csv(truth_file)) do accuracy[row.arch] = row[column] end
local function lookup(arch) return accuracy[arch] end

local data_name = nas.arg("data", "cifar10")
local data = nas.dataset{ name = data_name }
local space = nas.space{ name = "nb201", data = data, cells_per_stage = nas.arg("cells", 1),
                         channels = nas.arg("channels", 8) }
local seeds = {}
for s in tostring(nas.arg("seeds", "0,1,2")):gmatch("%d+") do seeds[#seeds + 1] = tonumber(s) end
local fit_steps, batch = nas.arg("fit_steps", 300), nas.arg("batch", 64)
local eval_images = nas.arg("eval_images", 500)
local search = { epochs = nas.arg("epochs", 10), steps = nas.arg("steps", 20), batch = batch,
                 cross_start = nas.arg("cross_start", 5), cross_end = nas.arg("cross_end", 7),
                 valid_images = nas.arg("valid_images", 500), alpha_lr = nas.arg("alpha_lr", 3e-4) }

local function fmt(acc) return acc and string.format("%.2f", acc) or "n/a" end
local rows = {}
for _, seed in ipairs(seeds) do
  local adwp = nas.surrogate("adwp", { init_seed = seed, onehot_prob = nas.arg("onehot_prob", 0.0) })
  local t0 = nas.clock()
  adwp:fit{ space = space, data = data, epochs = 1000, steps = fit_steps, batch = batch }
  local fit_s = nas.clock() - t0
  -- α's random start comes from the strategy's stream: --seed and how many searches came before.
  local t1 = nas.clock()
  local o = {}
  for k, v in pairs(search) do o[k] = v end
  o.keep = 2
  local found = nas.strategy("gradient", o):run{ surrogate = adwp, space = space, data = data,
                                                 eval_images = eval_images, eval_batch = 250 }
  local search_s = nas.clock() - t1
  local final, best_valid
  for _, c in ipairs(found) do
    if c.final == 1 then final = c end
    if c.best_valid == 1 then best_valid = c end
  end
  -- The cost of one scored cell, then random search with that surrogate for the same time.
  local t2 = nas.clock()
  adwp:score{ space = space, data = data, archs = space:sample(5), images = eval_images, batch = 250 }
  local per_cell = (nas.clock() - t2) / 5
  local budget = math.max(1, math.floor(search_s / per_cell + 0.5))
  local t3 = nas.clock()
  local top = nas.strategy("random", { candidates = budget, keep = budget }):run{
    surrogate = adwp, space = space, data = data, eval_images = eval_images, eval_batch = 250 }
  local random_s = nas.clock() - t3
  local pool_sum, pool_n = 0, 0
  for _, c in ipairs(top) do
    local a = lookup(c.arch)
    if a then pool_sum, pool_n = pool_sum + a, pool_n + 1 end
  end
  local row = string.format("| %d | `%s` | %s | %s | %.0f + %.0f | %d | `%s` | %s | %s | %.0f |", seed, final.arch,
    fmt(lookup(final.arch)), fmt(best_valid and lookup(best_valid.arch)), fit_s, search_s, budget, top[1].arch,
    fmt(lookup(top[1].arch)), pool_n > 0 and string.format("%.2f", pool_sum / pool_n) or "n/a", random_s)
  print(row)
  rows[#rows + 1] = row
end
local report = {
  "# ADWP's gradient search on NAS-Bench-201", "",
  string.format("Data %s; nb201 cells_per_stage=%d, channels=%d; adwp Stage 1: %d steps of batch %d; gradient: %d epochs of %d steps, cross-search [%d, %d), alpha_lr %g; scores on %d validation images. Accuracy: %s, column %s.",
    data_name, nas.arg("cells", 1), nas.arg("channels", 8), fit_steps, batch, search.epochs, search.steps,
    search.cross_start, search.cross_end, search.alpha_lr, eval_images, truth_file, column), "",
  "| seed | gradient: derived cell (final α) | its accuracy | best-valid epoch's cell accuracy | fit + search s | random: cells scored in that time | best-scored cell | its accuracy | mean accuracy of the cells scored | random s |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" }
for _, r in ipairs(rows) do report[#report + 1] = r end
print("report: " .. nas.write_file("adwp_nb201.md", table.concat(report, "\n") .. "\n"))
