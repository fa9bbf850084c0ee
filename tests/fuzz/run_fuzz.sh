#!/usr/bin/env bash
# run_fuzz.sh TARGET SEEDS SECONDS WORKDIR: fuzz for SECONDS, starting from the
# checked-in seeds; new inputs go to WORKDIR/corpus, any crash to WORKDIR/.
set -eu
target=$1 seeds=$2 seconds=$3 work=$4
mkdir -p "$work/corpus"
cd "$work"
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 corpus "$seeds"
echo "1 passed, 0 failed: fuzzed $(basename "$target") for ${seconds}s without a crash"
