-- Ranking benchmark: how well does each surrogate's score rank architectures by their accuracy
-- after training from scratch?
--
--   hypernas run scripts/bench/ranking.lua --experiment ranking-fmnist [--set pool=50 ...]
--
-- A pool of architectures is drawn at random from a reduced NAS-Bench-201 space and each is
-- trained from scratch with one fixed recipe (the ground truth; stored in the experiment and
-- reused by reruns). Every surrogate then scores the same pool; the table gives Pearson,
-- Spearman and Kendall tau against the trained accuracy, on the whole pool and on its better
-- half, with each method's cost per architecture. It is written to ranking.md beside the store.

local pool_size   = nas.arg("pool", 50)
local data_name   = nas.arg("data", "fashion-mnist")
local train_steps = nas.arg("train_steps", 400)
local eval_images = nas.arg("eval_images", 1000)
local ghn_steps   = nas.arg("ghn_steps", 300)

local data = nas.dataset{ name = data_name }
local space = nas.space{ name = "nb201", cells_per_stage = nas.arg("cells", 1),
                         channels = nas.arg("channels", 8), data = data }
local pool = space:sample(pool_size)

-- Ground truth: one fixed recipe for every architecture.
local truth = {}
for i, arch in ipairs(pool) do
  local r = nas.train{ arch = arch, space = space, data = data, epochs = 1, max_steps = train_steps,
                       batch = 64, lr = 0.05, test_images = 5000, valid_images = 1000 }
  truth[i] = r.test_accuracy
  nas.log(string.format("ground truth %d/%d: %.4f %s", i, #pool, r.test_accuracy, r.reused and "(reused)" or ""))
end

local function better_half(values)
  local order = {}
  for i = 1, #truth do order[i] = i end
  table.sort(order, function(a, b) return truth[a] > truth[b] end)
  local xs, ys = {}, {}
  for k = 1, math.floor(#order / 2) do
    xs[#xs + 1] = values[order[k]]
    ys[#ys + 1] = truth[order[k]]
  end
  return xs, ys
end

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
}
-- --set methods=a,b,... keeps the methods whose plugin name is listed, or whose label
-- contains the text given (e.g. --set methods=GHN-2: for the single GHN-2 options).
local only = nas.arg("methods", "")

local rows = {}
for _, m in ipairs(methods) do
  if only == "" or only:find(m.name, 1, true) or m.label:find(only, 1, true) then
    local s = nas.surrogate(m.name, m.options)
    local fit_seconds = 0
    if m.fit then
      local ckpt = "checkpoints/" .. m.label:gsub("[^%w]+", "_") .. ".ckpt"
      local t = nas.clock()
      local curves = s:fit{ space = space, data = data, steps = ghn_steps, batch = 64 }
      fit_seconds = nas.clock() - t
      s:save(ckpt)
    end
    local t = nas.clock()
    local scores = s:score{ space = space, data = data, archs = pool, images = eval_images }
    local per_arch = (nas.clock() - t) / #pool
    local hx, hy = better_half(scores)
    rows[#rows + 1] = string.format("| %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.4f | %.0f |",
      m.label, nas.metrics.pearson(scores, truth), nas.metrics.spearman(scores, truth),
      nas.metrics.kendall(scores, truth), nas.metrics.pearson(hx, hy), nas.metrics.spearman(hx, hy),
      nas.metrics.kendall(hx, hy), per_arch, fit_seconds)
    print(rows[#rows])
  end
end

local lo, hi = 1, 0
for _, a in ipairs(truth) do lo = math.min(lo, a); hi = math.max(hi, a) end
local report = table.concat({
  string.format("Pool: %d architectures from nb201 (cells_per_stage=%d, channels=%d) on %s;",
    #pool, nas.arg("cells", 1), nas.arg("channels", 8), data_name),
  string.format("ground truth: test accuracy after %d SGD steps of batch 64 (range %.3f to %.3f).", train_steps, lo, hi),
  string.format("Scores on %d validation images; GHNs trained for %d steps. Seed %d.", eval_images, ghn_steps, nas.seed),
  "",
  "| method | Pearson | Spearman | Kendall | Pearson (top half) | Spearman (top half) | Kendall (top half) | s / arch | fit s |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  table.concat(rows, "\n"), "" }, "\n")
print("\n" .. report)
print("written to " .. nas.write_file("ranking.md", report))
