# Tiny assertion helpers for the shell tests; each test script sources this.
PASSED=0
FAILED=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        PASSED=$((PASSED + 1))
        echo "ok   - $what"
    else
        FAILED=$((FAILED + 1))
        echo "FAIL - $what"
    fi
}
contains() { grep -qF -- "$2" <<<"$1"; }
not_contains() { ! grep -qF -- "$2" <<<"$1"; }
finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
