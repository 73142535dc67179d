#pragma once
/// @file checkpoint.h
/// @brief Versioned, atomically written checkpoint files holding a plugin's state blob.
///
/// Layout: a text header ("HYPERNAS-CHECKPOINT", format version, plugin name, the plugin's
/// resolved options, blob length, FNV-1a checksum, blank line), then the blob. Writing goes to a
/// temporary file in the same folder, flushed and renamed over the target, so a crash mid-write
/// leaves the previous checkpoint intact.

#include <filesystem>
#include <string>

namespace hypernas {
class Surrogate;
}

namespace hypernas::store {

/// Format version written by this build; files of a newer version are refused.
inline constexpr int kCheckpointVersion = 1;

/// What a checkpoint file holds.
struct Checkpoint {
  std::string plugin;   ///< Name of the plugin that wrote the blob.
  std::string options;  ///< Its resolved options (canonical text), informational.
  std::string blob;     ///< The plugin's save_state().
};

/// Writes `checkpoint` to `path` atomically (creating parent folders). Throws Error naming the
/// path on any I/O failure.
void write_checkpoint(const std::filesystem::path& path, const Checkpoint& checkpoint);

/// Reads a checkpoint. Throws Error naming the file and the fault: missing, not a checkpoint,
/// newer format, truncated (with the byte counts), checksum mismatch.
Checkpoint read_checkpoint(const std::filesystem::path& path);

/// Reads the checkpoint at `path` and restores its blob into `surrogate`, created as plugin
/// `name`. Throws Error naming the file when it cannot be read (read_checkpoint()), was
/// written by another plugin, or the surrogate refuses the blob (with its reason); the
/// surrogate is unchanged then, as far as its load_state() keeps that promise.
void load_checkpoint(const std::filesystem::path& path, const std::string& name,
                     Surrogate& surrogate);

}  // namespace hypernas::store
