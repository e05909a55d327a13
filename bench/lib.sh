# Shared by the C benchmarks (sourced): the peers' cache dirs under $work, a baseline zcfs
# with its own cache and daemon, emptying each cache, medians.
# Needs: $work, $baseline (empty without --baseline).
export ZCFS_DIR=$work/zcfs-cache CCACHE_DIR=$work/ccache SCCACHE_DIR=$work/sccache ZCCACHE_DIR=$work/zccache
# The baseline runs with its own cache and runtime dirs, exported around its rounds (an
# `env` in front of each compile would cost it a process per compile).
base_env="env ZCFS_DIR=$work/zcfs-base-cache ZCFS_RUNTIME_DIR=$work/zcfs-base-run"

clear_cache() {
  case $1 in
    zcfs) zcfs clear >/dev/null 2>&1 || true ;;
    base) $base_env "$baseline" clear >/dev/null 2>&1 || true ;;
    ccache) ccache -C >/dev/null 2>&1 || true ;;
    sccache) sccache --stop-server >/dev/null 2>&1 || true; rm -rf "$SCCACHE_DIR" ;;
    zccache) zccache clear >/dev/null 2>&1 || rm -rf "$ZCCACHE_DIR" ;;
  esac
}

# The median of the numbers on stdin (separated by spaces or newlines).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
