# Shared by the scripts: where builds and caches live, and how to configure and build.
# shellcheck shell=bash
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Caches live outside the clone so a fresh clone (CI) reuses them.
CACHE_ROOT=${STAMPEDE_CACHE:-/var/cache/stampede}
mkdir -p "$CACHE_ROOT" 2>/dev/null || CACHE_ROOT="$HOME/.cache/stampede"
mkdir -p "$CACHE_ROOT"
export CCACHE_DIR="$CACHE_ROOT/ccache"
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-3G}
export CCACHE_BASEDIR="$ROOT"   # hits across clones in different folders
export CCACHE_NOHASHDIR=1
JOBS=${JOBS:-$(nproc)}

# build_tree DIR [cmake args...]: configure once, then build with ninja: everything, or only the
# targets named in $BUILD_TARGETS. The build log is shown only when something fails.
build_tree() {
  local dir=$1
  shift
  if [[ ! -f "$dir/build.ninja" ]]; then
    cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  fi
  mkdir -p "$dir"
  # shellcheck disable=SC2086 # BUILD_TARGETS is a list
  if ! ninja -C "$dir" -j "$JOBS" ${BUILD_TARGETS:-} >"$dir/last-build.log" 2>&1; then
    cat "$dir/last-build.log" >&2
    echo "build failed in $dir" >&2
    return 1
  fi
  tail -n 1 "$dir/last-build.log"
}
