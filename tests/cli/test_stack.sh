#!/usr/bin/env bash
# The ctest fixture around scripts/stack: `up` starts the test stack with fresh
# program logs; `down` stops it and then fails if any program of the suite
# (relay, services) reported a sanitizer error or leak in its log during the run.
#   test_stack.sh up|down STACK_SCRIPT STACK_DIR BUILD_DIR [extra up options]
set -euo pipefail
mode=$1 stack=$2 dir=$3 build=$4
shift 4
programs="outbox-relay order-service inventory-service payment-service shipping-service notification-service"

case "$mode" in
up)
    mkdir -p "$dir/logs"
    for p in $programs; do
        [ -f "$dir/logs/$p.log" ] && mv -f "$dir/logs/$p.log" "$dir/logs/$p.log.previous"
    done
    case " $* " in
    *" --secure "*)
        # Every command line the start-up runs, sampled, so it_secure can check that
        # no password was ever on one (they are visible to every user in ps).
        fresh=yes
        [ -f "$dir/kafka/data/meta.properties" ] && fresh=no
        "$stack" up --no-deps --dir "$dir" --build "$build" "$@" &
        up=$!
        python3 "$(dirname "$0")/cmdline_sampler.py" "$up" "$dir/logs/startup-cmdlines.log" &
        sampler=$!
        rc=0
        wait "$up" || rc=$?
        wait "$sampler" || true
        echo "# kafka formatted during this start-up: $fresh" >>"$dir/logs/startup-cmdlines.log"
        exit "$rc"
        ;;
    esac
    exec "$stack" up --no-deps --dir "$dir" --build "$build" "$@"
    ;;
down)
    "$stack" down --dir "$dir" --build "$build"
    bad=0
    for p in $programs; do
        f=$dir/logs/$p.log
        [ -f "$f" ] || continue
        if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
            echo "FAIL - $p reported a sanitizer error (log: $f):"
            grep -E -A20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f" | head -n 40
            bad=1
        fi
    done
    [ "$bad" = 0 ] && echo "ok - no sanitizer reports in the programs' logs"
    exit "$bad"
    ;;
*)
    echo "usage: $0 up|down STACK_SCRIPT STACK_DIR BUILD_DIR" >&2
    exit 64
    ;;
esac
