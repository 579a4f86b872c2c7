#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and gives each a short smoke run
# (a bounded number of executions, or a time limit, whichever comes first),
# seeded from the repository's own templates. Any crash, panic, timeout
# (a render that escapes its fuel) or escape from the workspace fails.
#
#   FUZZ_RUNS       executions per target (default 200000)
#   FUZZ_MAX_TIME   seconds per target at most (default 30)
#
# Without AddressSanitizer (`-s none`): the targets run safe Rust, where a
# panic is what we look for, and the build of the whole dependency tree is
# about 3.5 times faster (about 10 minutes on the shared 2-core machine).
# cargo-fuzz needs nightly features; only the stable toolchain is installed,
# so they are unlocked with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RUNS=${FUZZ_RUNS:-200000}
MAX_TIME=${FUZZ_MAX_TIME:-30}
TARGETS=(render template_parse workspace_path)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version
export RUSTC_BOOTSTRAP=1

# Seeds: the test and real templates, and a few paths and renders.
SEEDS=$ROOT/fuzz/target/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS"/{render,template_parse,workspace_path}
i=0
for f in "$ROOT"/tests/templates/*/template.yaml "$ROOT"/templates/*/template.yaml; do
    i=$((i + 1))
    cp "$f" "$SEEDS/template_parse/t$i.yaml"
done
printf '%s' 'hello ${{ parameters.name | upper }}' >"$SEEDS/render/1"
printf '%s' '{% for x in parameters.list %}${{ x + 1 }}{% endfor %}' >"$SEEDS/render/2"
printf '%s\0%s' '${{ a.b | dump }}' '{"a":{"b":[1,"x"]}}' >"$SEEDS/render/3"
printf '%s' '${{ parameters.name.split("v").join("-") === "s-c" }}' >"$SEEDS/render/4"
printf '%s' '../x' >"$SEEDS/workspace_path/1"
printf '%s\n%s' '@a=/tmp' 'a/x' >"$SEEDS/workspace_path/2"
printf '%s\n%s' '@b=../outside' 'b/../ws/c' >"$SEEDS/workspace_path/3"
printf '%s' 'sub/../in-link/x' >"$SEEDS/workspace_path/4"

cd fuzz
cargo fuzz build -O -s none
TOTAL=0
for target in "${TARGETS[@]}"; do
    corpus=$ROOT/fuzz/corpus/$target
    mkdir -p "$corpus"
    log=$ROOT/fuzz/target/$target.log
    if ! cargo fuzz run -O -s none "$target" "$corpus" "$SEEDS/$target" -- \
        -runs="$RUNS" -max_total_time="$MAX_TIME" -timeout=10 -rss_limit_mb=4096 -seed=1 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -60 "$log"
        echo "fuzz target $target failed (crash, panic, timeout or leak); reproducer under fuzz/artifacts/$target" >&2
        exit 1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz $target: ${execs:-?} executions, 0 crashes ($(grep -m1 -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" || true))"
    TOTAL=$((TOTAL + ${execs:-0}))
done
echo "fuzz: $TOTAL executions over ${#TARGETS[@]} targets, 0 crashes"
