#!/usr/bin/env python3
"""Times facebookresearch/ppuda's GHN-1 and GHN-2 predicting every parameter of the DARTS
genotype at C=16 with 8 cells (CIFAR-10 input, 10 classes): the reference beside
`hypernas_bench_ghn_timing --mode=darts`, which times HyperNAS's `ghn` on the same network.

ppuda is not part of HyperNAS: bring a git copy of facebookresearch/ppuda here (e.g. the
search tool's fetch) and set it up with bench/setup_ppuda.sh, which installs Debian's
python3-torch and the packages ppuda imports, einops from PyPI, and unpacks ppuda's source:
    bash bench/setup_ppuda.sh /work/.mirror/facebookresearch+ppuda/repo /tmp/ppuda
    PYTHONPATH=/tmp/ppuda/pylib /usr/bin/python3 bench/ppuda_timing.py --ppuda /tmp/ppuda/src

The GHNs are built with random weights (the timing does not depend on them): GHN-1 as ppuda
configures it (hid 32, ConvDecoder, max_shape 64x64x3x3) and GHN-2 (the same with virtual edges,
layer norm and weight normalisation). Each figure is the minimum wall time over --reps calls
after one warm-up, in eval mode, called as ppuda's README calls it: with the graph built from
the network each call (what `ghn(model)` does) and with the graph built once.

Usage: /usr/bin/python3 bench/ppuda_timing.py --ppuda DIR [--threads 2] [--reps 8]
"""
import argparse
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ppuda", required=True, help="folder holding the ppuda package")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=8)
    args = ap.parse_args()
    sys.path.insert(0, args.ppuda)
    import torch
    from ppuda.deepnets1m.genotypes import DARTS
    from ppuda.deepnets1m.graph import Graph, GraphBatch
    from ppuda.deepnets1m.net import Network
    from ppuda.ghn.nn import GHN

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = Network(C=16, num_classes=10, genotype=DARTS, n_cells=8, is_imagenet_input=False)
    params = sum(p.numel() for p in net.parameters())

    def best(f):
        f()
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return 1e3 * min(times)

    print("### ppuda GHN weight prediction: DARTS genotype, C=16, 8 cells, 32x32x3, 10 classes\n")
    print(f"torch {torch.__version__}, {args.threads} threads; network of {params:,} parameters; "
          f"minimum over {args.reps} calls, ms.\n")
    print("| GHN | ghn(model): graph + prediction | prediction, graph built once |")
    print("|---|---:|---:|")
    for label, kw in [("ppuda GHN-1", {}),
                      ("ppuda GHN-2", {"ve": True, "layernorm": True, "weight_norm": True})]:
        ghn = GHN(max_shape=(64, 64, 3, 3), num_classes=10, hid=32, **kw).eval()
        graph = GraphBatch([Graph(net, ve_cutoff=50 if kw.get("ve") else 1)]).to_device("cpu")
        # (ppuda builds the graph by tracing the network's autograd graph: no torch.no_grad.)
        whole = best(lambda: ghn(net))
        predict = best(lambda: ghn(net, graph))
        print(f"| {label} | {whole:.1f} | {predict:.1f} |")
    print(f"\nReproduce: `/usr/bin/python3 {' '.join(sys.argv)}`")


if __name__ == "__main__":
    main()
