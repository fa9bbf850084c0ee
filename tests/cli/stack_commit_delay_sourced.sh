#!/usr/bin/env bash
# The commit_delay a stack keeps (STACK_PG_COMMIT_DELAY, remembered in DIR/pg_commit_delay)
# against the ways users and scripts source stack.env (review10 found both failing while
# the value was a line of stack.env).
#   stack_commit_delay_sourced.sh STACK_SCRIPT BUILD_DIR
set -u
STACK=$1
BUILD=$2
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d)
trap '"$STACK" down --dir "$T/b" >/dev/null 2>&1; rm -rf "$T"' EXIT
chmod 755 "$T"

up() { STACK_PROGRAMS="" timeout 120 "$STACK" up --no-deps --ports auto --dir "$T/b" --build "$BUILD" >/dev/null 2>&1; }
show() { (. "$T/b/stack.env" && psql -X -qAt "$PG_SUPERUSER_URL" -c "SHOW commit_delay" 2>&1); }

STACK_PG_COMMIT_DELAY=2500 up
check "the stack runs at 2500" test "$(show)" = 2500
cp "$T/b/stack.env" "$T/b-at-2500.env"
STACK_PG_COMMIT_DELAY=0 up
check "then at 0" test "$(show)" = 0

# A shell that sourced the stack's stack.env with `set -a` (as scripts/bench does, and the
# users it_secure.c models) while it ran at 2500 exports STACK_PG_COMMIT_DELAY=2500: the
# next up from there takes it as given and puts the old value back.
(set -a && . "$T/b-at-2500.env" && set +a && up)
echo "# after the up from the 'set -a' shell: commit_delay $(show)"
check "an up from a shell that did 'set -a; . stack.env' earlier keeps the stack's 0" \
    test "$(show)" = 0
STACK_PG_COMMIT_DELAY=0 up

# A shell that sourced ANOTHER stack's stack.env (every new stack's says 1000): a value
# given on purpose that happens to equal that file's is dropped as "sourced".
mkdir -p "$T/other"
cat >"$T/other/stack.env" <<EOT
export STACK_DIR='$T/other'
STACK_PG_COMMIT_DELAY=1000
EOT
(. "$T/other/stack.env" && STACK_PG_COMMIT_DELAY=1000 up)
echo "# after STACK_PG_COMMIT_DELAY=1000 up: commit_delay $(show)"
check "STACK_PG_COMMIT_DELAY=1000 given on purpose, after sourcing another stack at 1000, sets 1000" \
    test "$(show)" = 1000
"$STACK" down --dir "$T/b" >/dev/null 2>&1
finish
