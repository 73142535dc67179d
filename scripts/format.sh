#!/usr/bin/env bash
# clang-format over the C++ sources, with the style of .clang-format at the repository root.
#   scripts/format.sh check [FILE...]   list the files that are not formatted; exit 1 if any
#   scripts/format.sh fix [FILE...]     format them in place
# Without FILEs: every *.h and *.cpp under kernel/ plugins/ sdk/ tests/ bench/ (build folders and
# vendored code left out: vendor/, third_party/, external/). CLANG_FORMAT names the program
# (default: clang-format; the style needs version 14 or later).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mode="${1:-}"
case "$mode" in
  check|fix) shift ;;
  *)
    echo "usage: scripts/format.sh check|fix [FILE...]" >&2
    exit 2
    ;;
esac

clang_format="${CLANG_FORMAT:-clang-format}"
if ! command -v "$clang_format" >/dev/null 2>&1; then
  echo "scripts/format.sh: '$clang_format' not found (install clang-format, or set CLANG_FORMAT)" >&2
  exit 2
fi

list_sources() {
  local roots=(kernel plugins sdk tests bench)
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked files and new ones that git does not ignore.
    git ls-files --cached --others --exclude-standard -- "${roots[@]}"
  else
    find "${roots[@]}" -type f
  fi | grep -E '\.(h|cpp)$' \
     | grep -Ev '(^|/)(build[^/]*|vendor|third_party|external)/' \
     | sort -u \
     | while IFS= read -r f; do [[ -f "$f" ]] && printf '%s\n' "$f"; done
}

files=()
if (( $# > 0 )); then
  files=("$@")
else
  while IFS= read -r f; do files+=("$f"); done < <(list_sources)
fi

if [[ "$mode" == fix ]]; then
  (( ${#files[@]} == 0 )) || "$clang_format" -i --style=file "${files[@]}"
  exit 0
fi

bad=0
for f in "${files[@]}"; do
  if ! "$clang_format" --style=file "$f" | cmp -s - "$f"; then
    echo "$f"
    bad=$((bad + 1))
  fi
done
if (( bad > 0 )); then
  echo "scripts/format.sh: $bad of ${#files[@]} files are not formatted (scripts/format.sh fix)" >&2
  exit 1
fi
echo "scripts/format.sh: ${#files[@]} files formatted"
