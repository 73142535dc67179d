-- NAS-Bench-201 cells in a network small enough to train on 2 CPU cores.
return { name = "nb201", cells_per_stage = 1, channels = 8 }
