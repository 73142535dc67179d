#pragma once
/// @file architecture.h
/// @brief An architecture as a directed acyclic graph of operator nodes (Boost.Graph).
///
/// Every search space turns its own description (a NAS-Bench-201 cell string, a DARTS genotype,
/// a GHN block list) into this one graph form. Surrogates read the graph (GHN propagates over
/// it), the executor runs it, and the results store keys it by its canonical JSON's hash.

#include <cstdint>
#include <string>
#include <vector>

#include <boost/graph/adjacency_list.hpp>

namespace hypernas {

/// @name Primitive operators
/// The executor's vocabulary. A node's input is the sum of its in-neighbours' outputs (in
/// vertex order), except for `concat`, which concatenates them along channels in vertex order.
/// Weights are keyed "<node name>.weight" / "<node name>.bias".
/// - `input`: the image batch (no in-neighbours).
/// - `conv`: 2-D convolution, no bias; weight [c_out, c_in/groups, kernel, kernel];
///   padding dilation*(kernel-1)/2.
/// - `bn`: batch norm over c_out channels with batch statistics; weight and bias [c_out].
/// - `relu`: ReLU.
/// - `avg_pool`, `max_pool`: kernel×kernel pooling, padding kernel/2 for odd kernels (0 for
///   even), average excluding padding.
/// - `add`: identity on the summed input; with no in-neighbours, zeros of [c_out] channels at
///   spatial `scale` (a cell node whose every incoming edge is `none`).
/// - `concat`: channel concatenation of the in-neighbours.
/// - `gap`: global average pooling to [N, c_out].
/// - `linear`: fully connected, weight [c_out, c_in], bias [c_out]; `exit` >= 0 marks it as the
///   logits of an exit head (the highest exit is the network's output).
/// - `resample` (ABI 1.3): one input, resized to spatial `scale`, i.e. ceil(H / 2^scale) x
///   ceil(W / 2^scale) of the network's input (the size `add` gives its zeros): average pooling
///   (adaptive, which is a kernel = stride = 2^k pooling when the sizes divide) to a smaller
///   size, nearest-neighbour upsampling to a larger one, the identity at the same size. No
///   weights, no FLOPs counted. For multi-scale networks (the `anytime` space).
/// - `mix` (ABI 1.4): one input, scaled by a probability that is not a weight: the branch end
///   of a relaxed network (see Relaxation in space.h), run only by Executor::forward_relaxed().
///   No weights, no FLOPs counted.
/// - `slice` (ABI 1.5): one input; c_out of its channels, starting at channel `kernel` with a
///   step of `stride` (channels kernel, kernel + stride, ...): SMASH's writes of one chunk of a
///   layer's output into a memory bank (step 1) and its gates' even and odd halves (step 2).
///   `c_in` is the input's width. No weights, no FLOPs counted.
/// - `mul` (ABI 1.5): the elementwise product of its in-neighbours (a multiplicative gate).
/// - `tanh`, `sigmoid` (ABI 1.5): the activations of SMASH's tanh-sigmoid gates and of its
///   variable nonlinearities.
/// @{
inline constexpr const char* kPrimitiveOps[] = {"input",    "conv",     "bn",       "relu",
                                                "avg_pool", "max_pool", "add",      "concat",
                                                "gap",      "linear",   "resample", "mix",
                                                "slice",    "mul",      "tanh",     "sigmoid"};
/// @}

/// One operator node and its attributes. An edge u -> v means v reads u's output.
struct OpNode {
  std::string op;           ///< Operator type, from the space's vocabulary ("input", "conv", ...).
  std::string name;         ///< Unique, stable name; keys the node's weights ("s0.c1.e2.conv").
  std::int64_t c_in = 0;    ///< Input channels (0 where the op has none to speak of).
  std::int64_t c_out = 0;   ///< Output channels.
  std::int64_t kernel = 0;  ///< Kernel size (0: no spatial kernel); a `slice`'s first channel.
  std::int64_t stride = 1;  ///< Stride.
  std::int64_t dilation = 1;  ///< Dilation.
  std::int64_t groups = 1;    ///< Convolution groups (c_in for depthwise).
  std::int64_t scale = 0;     ///< Spatial scale level: input resolution divided by 2^scale.
  std::int64_t module = -1;  ///< Index of the repeated cell/module this node belongs to (-1: none).
  std::int64_t exit = -1;    ///< Exit head index for multi-exit networks (-1: not an exit).
};

/// The graph type: bidirectional so both in- and out-neighbours are cheap (GHN's
/// forward-backward propagation walks both ways). Vertex order is a topological order.
using ArchGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, OpNode>;

/// An architecture of a named search space: its canonical text form and its graph.
struct Architecture {
  std::string space;  ///< Name of the search space that made it ("nb201").
  std::string text;   ///< The space's canonical string form (round-trips through parse()).
  ArchGraph graph;    ///< Operator graph; vertex ids are in topological order.
};

}  // namespace hypernas
