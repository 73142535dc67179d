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
