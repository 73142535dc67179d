-- Loads the out-of-tree plugin by name and searches with it.
local space = nas.space{ name = "nb201", cells_per_stage = 1 }
local top = nas.strategy("random", { candidates = 40, keep = 3 }):run{
  surrogate = nas.surrogate("depth", { param_penalty = 0.1 }), space = space }
for i, c in ipairs(top) do print(string.format("top%d %s %.3f depth=%d", i, c.arch, c.score, c.depth)) end
