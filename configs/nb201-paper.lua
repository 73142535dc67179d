-- The NAS-Bench-201 macro skeleton as published (1.53 M parameters for the all-3x3 cell).
return { name = "nb201", cells_per_stage = 5, channels = 16 }
