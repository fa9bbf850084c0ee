#!/usr/bin/env bash
# The diagram of docs/SERVICES.md is generated from the saga's declaration
# (common/src/choreography.c): what `sagactl choreography --mermaid` prints must be
# exactly what the file holds between its markers. After changing the declaration:
#   build/bin/sagactl choreography --mermaid   and paste it between the markers
# usage: choreography_docs.sh PATH/TO/sagactl PATH/TO/docs/SERVICES.md
set -u
SAGACTL=$1
DOC=$2
. "$(dirname "$0")/lib.sh"

want=$("$SAGACTL" choreography --mermaid)
check "sagactl choreography --mermaid prints a flowchart" contains "$want" "flowchart TD"
# The lines between the markers, without the ```mermaid fence around them.
have=$(sed -n '/<!-- choreography:begin/,/<!-- choreography:end/p' "$DOC" | sed '1d;$d' | sed '1{/^```mermaid$/d};${/^```$/d}')
check "docs/SERVICES.md has the choreography markers" test -n "$have"
if [ "$have" != "$want" ]; then
    echo "docs/SERVICES.md's diagram differs from the declaration (- doc, + generated):"
    diff <(echo "$have") <(echo "$want") | head -40
fi
check "docs/SERVICES.md's diagram is the one generated from the declaration" test "$have" = "$want"
finish
