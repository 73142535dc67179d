#pragma once
// Runs a child process for the tests that drive `hypernas` and CMake from outside.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace hypernas::test {

/// What a finished child process left: its exit code (128+N for signal N) and its output
/// (stdout and stderr merged).
struct ProcessResult {
  int exit_code = -1;
  std::string output;
};

/// A child process with stdout+stderr on a pipe.
class Process {
 public:
  /// Starts argv[0] with `argv` and extra environment `env` ("" unsets a variable).
  Process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
          const std::string& cwd = "") {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      for (const auto& [k, v] : env) {
        if (v.empty()) unsetenv(k.c_str());
        else setenv(k.c_str(), v.c_str(), 1);
      }
      if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
  }
  ~Process() {
    if (fd_ >= 0) close(fd_);
  }
  /// Reads output until a line containing `needle` arrived (or the output ended); true if seen.
  bool wait_for(const std::string& needle) {
    while (output_.find(needle) == std::string::npos)
      if (!read_some()) return false;
    return true;
  }
  /// Sends `sig` to the child.
  void signal(int sig) { kill(pid_, sig); }
  /// Reads the rest of the output and waits for the exit.
  ProcessResult finish() {
    while (read_some()) {
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    ProcessResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.output = output_;
    return r;
  }

 private:
  bool read_some() {
    char buf[4096];
    ssize_t n = read(fd_, buf, sizeof buf);
    if (n <= 0) return false;
    output_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string output_;
};

/// Runs a command to completion.
inline ProcessResult run(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         const std::string& cwd = "") {
  return Process(argv, env, cwd).finish();
}

}  // namespace hypernas::test
