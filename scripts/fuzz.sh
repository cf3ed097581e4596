#!/usr/bin/env bash
# Runs umbra's fuzz targets (fuzz/: cargo-fuzz and libFuzzer) for a bounded time each, starting
# from the seed corpora in fuzz/corpus/<target>/. New inputs found go to fuzz/work/<target>/
# (not committed); a crash stops that target, is written to fuzz/artifacts/<target>/, and makes
# the script exit non-zero after the other targets have run.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   default 60 s, every target
#   scripts/fuzz.sh --ci [TARGET...]                   20 s each, as CI runs it
#
# Targets are built with AddressSanitizer (FUZZ_SANITIZER=none to skip it); --ci skips it, as
# the build is most of CI's time and umbra's own code is safe Rust (a failed assertion or a
# panic is what a target finds there).
#
# Needs rustup's nightly toolchain (installed if missing), cargo-fuzz (installed if missing)
# and a C++ compiler for libFuzzer (Debian: g++).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
sanitizer=${FUZZ_SANITIZER:-address}
if [ "${1:-}" = "--ci" ]; then
  seconds=20
  sanitizer=${FUZZ_SANITIZER:-none}
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
toolchain=${FUZZ_TOOLCHAIN:-nightly}
# Each input must finish within this many seconds (a slower one is reported as a hang).
input_timeout=${FUZZ_INPUT_TIMEOUT:-25}

if ! command -v c++ >/dev/null 2>&1; then
  echo "fuzz.sh: libFuzzer needs a C++ compiler (Debian: apt-get install g++)" >&2
  exit 2
fi
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# The fuzz crate has its own workspace and target directory.
unset CARGO_TARGET_DIR

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

start=$SECONDS
echo "fuzz.sh: building ${#targets[@]} targets"
cargo "+$toolchain" fuzz build --sanitizer "$sanitizer"
echo "fuzz.sh: built in $((SECONDS - start)) s; ${seconds} s per target"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
  log="fuzz/work/$t.log"
  echo "fuzz.sh: $t"
  if cargo "+$toolchain" fuzz run --sanitizer "$sanitizer" "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout="$input_timeout" -print_final_stats=1 >"$log" 2>&1; then
    # The last status line says how many inputs ran and how fast.
    grep -E '^#[0-9]+' "$log" | tail -n 1 || true
  else
    failed+=("$t")
    echo "fuzz.sh: $t FAILED; the end of its log ($log):" >&2
    grep -v -E '^#[0-9]+' "$log" | tail -n 40 >&2
    artifact=$(grep -o 'Test unit written to .*' "$log" | sed 's/Test unit written to //' | tail -n 1)
    if [ -n "$artifact" ]; then
      echo "fuzz.sh: the input is $artifact" >&2
      echo "fuzz.sh: reproduce with: cargo +$toolchain fuzz run -s $sanitizer $t $artifact" >&2
      echo "fuzz.sh: minimize with:  cargo +$toolchain fuzz tmin -s $sanitizer $t $artifact" >&2
    fi
  fi
done

echo "fuzz.sh: done in $((SECONDS - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failing targets: ${failed[*]}" >&2
  exit 1
fi
