-- Loads the out-of-tree plugins by name and searches with them.
local space = nas.space{ name = "nb201", cells_per_stage = 1 }
local top = nas.strategy("random", { candidates = 40, keep = 3 }):run{
  surrogate = nas.surrogate("depth", { param_penalty = 0.1 }), space = space }
for i, c in ipairs(top) do print(string.format("top%d %s %.3f depth=%d", i, c.arch, c.score, c.depth)) end

-- NASWOT reads ReLU outputs through the SDK; on Fashion-MNIST, a small NB201.
local data = nas.dataset{ name = "fashion-mnist", valid = 200 }
local small = nas.space{ name = "nb201", cells_per_stage = 1, channels = 8, data = data }
local naswot = nas.surrogate("naswot_example", { batch = 16 })
local best = nas.strategy("random", { candidates = 12, keep = 2 }):run{
  surrogate = naswot, space = small, data = data }
for i, c in ipairs(best) do
  print(string.format("naswot%d %s %.3f units=%d", i, c.arch, c.score, c.relu_units))
end
-- The third-party strategy scores through the kernel's evaluation service: the first 12 cells
-- include the 12 the random search drew only by chance, and every stored score is reused.
local ex = nas.strategy("exhaustive_example", { count = 12, keep = 1 }):run{
  surrogate = naswot, space = small, data = data }
print(string.format("exhaustive %s %.3f", ex[1].arch, ex[1].score))
-- A score-neutral option does not change the key, so a second run reuses every score.
local quiet = nas.surrogate("naswot_example", { batch = 16, report_units = true })
assert(quiet:key{ data = data } == naswot:key{ data = data })
local again = nas.strategy("exhaustive_example", { count = 12, keep = 1 }):run{
  surrogate = quiet, space = small, data = data }
print(string.format("reused %s", tostring(again[1].reused)))
print("stored " .. #nas.evaluations(naswot:key{ data = data }))
-- A surrogate built from another by name (ABI 1.2): the kernel creates the inner `depth`.
local pen = nas.surrogate("penalised_example", { inner = "depth", penalty = 0.5 })
local three = space:sample(3)
local p = pen:score{ space = space, archs = three }
local plain = nas.surrogate("depth"):score{ space = space, archs = three }
local below = true
for i = 1, 3 do below = below and p[i] < plain[i] end
print(string.format("penalised %d scores, below depth: %s", #p, tostring(below)))

-- ABI 1.3: a multi-exit surrogate built out of tree (exit_flops() from the installed SDK) drives
-- the built-in `anytime` strategy, on the `anytime` space when it is installed, else on NB201
-- (one exit per network). Everything is returned (keep = candidates), so the ranking is checked
-- here in full: the FLOPs range, each area, the order, the flags and the Pareto front.
local ok, any_space = pcall(nas.space, { name = "anytime" })
local exit_space, exit_space_name = any_space, "anytime"
if not ok then
  print("no anytime space (" .. tostring(any_space) .. "); searching nb201")
  exit_space, exit_space_name = space, "nb201"
end
local ranked = nas.strategy("anytime", { candidates = 16, keep = 16, batch = 4 }):run{
  surrogate = nas.surrogate("exit_depth"), space = exit_space }
assert(#ranked == 16, "anytime returned " .. #ranked .. " of 16 candidates")
local lo, hi = math.huge, -math.huge
for _, c in ipairs(ranked) do
  assert(c.exits and #c.exits >= 1, "no exits on " .. c.arch)
  for k, e in ipairs(c.exits) do
    assert(k == 1 or e.flops >= c.exits[k - 1].flops, "exit FLOPs decrease on " .. c.arch)
    lo, hi = math.min(lo, e.flops), math.max(hi, e.flops)
  end
end
local function area(exits)  -- the step curve, segment by segment between its breakpoints
  local cuts = { lo, hi }
  for _, e in ipairs(exits) do if e.flops > lo and e.flops < hi then cuts[#cuts + 1] = e.flops end end
  table.sort(cuts)
  local sum = 0
  for i = 1, #cuts - 1 do
    local best = 0
    for _, e in ipairs(exits) do if e.flops <= cuts[i] then best = math.max(best, e.accuracy) end end
    sum = sum + best * (cuts[i + 1] - cuts[i])
  end
  return sum / (hi - lo)
end
local function dominated(p)
  for _, c in ipairs(ranked) do
    for _, q in ipairs(c.exits) do
      if (q.flops <= p.flops and q.accuracy > p.accuracy) or
         (q.flops < p.flops and q.accuracy >= p.accuracy) then return true end
    end
  end
  return false
end
-- Front owners: of points equal in both, the strategy credits the first scored only.
local needed, covered, owners = {}, {}, 0
for i, c in ipairs(ranked) do
  assert(math.abs(c.score - area(c.exits)) < 1e-9, "area of " .. c.arch)
  assert(c.auc == c.score and c.kept == 1, "auc/kept of " .. c.arch)
  assert(c.final_accuracy == c.exits[#c.exits].accuracy, "final accuracy of " .. c.arch)
  assert(i == 1 or ranked[i - 1].score >= c.score, "not ordered by area at " .. i)
  local owns = false
  for _, e in ipairs(c.exits) do
    if not dominated(e) then
      owns = true
      needed[e.flops .. ":" .. e.accuracy] = true
      if c.front == 1 then covered[e.flops .. ":" .. e.accuracy] = true end
    end
  end
  assert(c.front == 0 or owns, "front flag of " .. c.arch)
  if c.front == 1 then owners = owners + 1 end
end
for point in pairs(needed) do assert(covered[point], "front point " .. point .. " not owned") end
print(string.format("anytime on %s: %d checked, FLOPs [%d, %d], best area %.4f, %d on the front",
                    exit_space_name, #ranked, lo, hi, ranked[1].score, owners))

-- ABI 1.4: a surrogate differentiable in the architecture parameters, built out of tree, driven
-- by the built-in `gradient` strategy on the relaxed NB201 network; every epoch is recorded.
local grad = nas.strategy("gradient", { epochs = 2, steps = 2, batch = 16, cross_start = 1,
                                        cross_end = 2, valid_images = 32, alpha_lr = 0.05 }):run{
  surrogate = nas.surrogate("relaxed_scale"), space = small, data = data, eval_images = 64 }
local recorded = nas.search_epochs()
assert(#recorded == 2, "gradient recorded " .. #recorded .. " epochs")
assert(recorded[2].phase == "cross" and recorded[2].gb_change > 0, "cross-search changed nothing")
assert(#recorded[1].alphas == 1 and recorded[1].alphas[1].shape[1] == 6, "alpha blocks")
local final
for _, c in ipairs(grad) do if c.final == 1 then final = c end end
assert(final and final.arch == recorded[2].arch, "the final candidate is the last epoch's cell")
print(string.format("gradient %s %.3f after %d epochs", final.arch, final.score, #recorded))

-- ABI 1.5: a space built out of tree whose networks use SMASH's primitives (slice, tanh,
-- sigmoid, mul) and that mutates its architectures drives the built-in `perturb` strategy (local
-- search from the best random candidates); `sgd` trains each candidate briefly through the
-- executor, so every gate really runs.
local chains = nas.space{ name = "gated_chain", data = data }
local mutated = chains:mutate("c3-g5", 1.0)
assert(mutated ~= "c3-g5" and #mutated == 5, "mutate at p = 1 changed nothing: " .. mutated)
local trace = 0
nas.on_candidate(function(event) if event == "perturb" then trace = trace + 1 end end)
local local_search = nas.strategy("perturb", { candidates = 4, perturbations = 3, chain = 3, keep = 2 }):run{
  surrogate = nas.surrogate("sgd", { steps = 2, batch = 8, eval_images = 16 }), space = chains, data = data,
  eval_images = 16 }
nas.on_candidate(nil)
assert(#local_search == 2 and local_search[1].score >= local_search[2].score, "perturb ranking")
print(string.format("perturb %s %.3f after %d steps", local_search[1].arch, local_search[1].score, trace))
