# shellcheck shell=bash
# Source this: how the deploy and test commands say what they do. Each step prints one line with the time of day
# and what it usually takes; a long command writes its output to a log and prints a line every 30 s (time so far,
# the log's last line), so a slow machine never looks hung, and the end of its log when it fails.

# usage: step TEXT...
step() {
  printf '==> %(%H:%M:%S)T %s\n' -1 "$*"
}

# usage: run_logged LABEL LOG COMMAND [ARG...]
run_logged() {
  local label=$1 log=$2 start=$SECONDS pid rc=0 last
  shift 2
  mkdir -p "$(dirname "$log")"
  "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 1 30); do
      kill -0 "$pid" 2>/dev/null || break 2
      sleep 1
    done
    # pip repeats a warning about index locations some machines configure but lack: never the news.
    last=$(grep -v 'is ignored: it is neither a file nor a directory' "$log" | tail -n 1 | cut -c1-90)
    printf '    %s: %d s so far. %s\n' "$label" $((SECONDS - start)) "$last"
  done
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '    %s FAILED after %d s (exit %d); the end of %s:\n' "$label" $((SECONDS - start)) "$rc" "$log" >&2
    tail -n 30 "$log" >&2
    return "$rc"
  fi
  printf '    %s: done in %d s\n' "$label" $((SECONDS - start))
}
