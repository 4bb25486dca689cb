#!/usr/bin/env bash
# The prepared GPU check (issue 15, item 5): the cuda_standalone check of tests/test_cuda.py and the
# throughput benchmark's cuda_standalone rows (next to cpp_standalone on the same batch), in one
# short run on a machine with an NVIDIA GPU and a CUDA toolkit.
#
# The GPU machine reaches no package registry and runs Python 3.12. Beforehand, on a machine that
# does, put the cp312 wheels into build/gpu_wheels/ (git-ignored: build/), 64 MiB at most in all:
#
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
#       -d build/gpu_wheels brian2==2.10.1 brian2cuda==1.0b1
#
# plus the wheels of whatever the machine's image lacks among their dependencies (sympy, jinja2,
# pyparsing, cython, ...) and the project's (numpy, scipy, torch, scikit-learn, psutil, tqdm,
# pytest): pip stops on a missing dependency, and the script checks the imports first and stops
# with the list. Mind the 64 MiB: torch does not fit, so a machine without torch cannot run it. Then run it there from the repository root, carrying the wheels:
#
#   bash benchmarks/gpu_check.sh            # device tool: carry ["build/gpu_wheels"]
#
# It writes into $OUT (default output/gpu_check): gpu_check.log (everything), gpu_check.json
# (GPU name, versions, the test's exit status, the rows) and gpu_check.md (a table to commit as
# benchmarks/results/gpu_check.md, with the machine named). Nothing in the checkout is changed.
# Budget: about 5-8 min (two nvcc builds of the benchmark, one of the test).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-output/gpu_check}
WHEELS=${WHEELS:-build/gpu_wheels}
PY=${PYTHON:-python3}
VENV=${VENV:-/tmp/scttfs-gpu-venv}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
echo "== gpu_check $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || { echo "no GPU here"; exit 2; }
command -v nvcc >/dev/null || export PATH="$PATH:/usr/local/cuda/bin"
nvcc --version | tail -2 || { echo "no CUDA toolkit (nvcc) here"; exit 2; }
$PY --version

# 1. an environment over the image's packages (numpy, torch, ...), with the carried wheels
if [ ! -x "$VENV/bin/python" ]; then
  $PY -m venv --system-site-packages "$VENV" || exit 2
fi
if [ -d "$WHEELS" ]; then
  "$VENV/bin/pip" install --no-index --find-links "$WHEELS" brian2==2.10.1 brian2cuda==1.0b1 || exit 2
else
  echo "no $WHEELS: using whatever brian2/brian2cuda the image has"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the project itself, from the checkout
export TQDM_DISABLE=1
"$VENV/bin/python" - <<'EOF' || exit 2
import importlib.util
import sys
need = ["numpy", "scipy", "sympy", "jinja2", "pyparsing", "psutil", "tqdm", "torch", "sklearn",
        "pytest", "brian2", "brian2cuda"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing on this machine: {missing}; add their cp312 wheels to build/gpu_wheels")
import brian2, brian2cuda
print("brian2", brian2.__version__, "brian2cuda", getattr(brian2cuda, "__version__", "?"))
from scttfs_brian.brian import cuda_available
ok, why = cuda_available()
print("cuda_standalone available:", ok, why)
sys.exit(0 if ok else f"cuda_standalone unavailable: {why}")
EOF

# 2. the check: spike counts of a batched network on the GPU equal to the numpy target
"$VENV/bin/python" -m pytest -m gpu tests/test_cuda.py -q -p no:cacheprovider -rA
TEST_RC=$?
echo "== pytest -m gpu exit status: $TEST_RC"

# 3. the throughput benchmark's rows: cpp_standalone and cuda_standalone on the same batch
TEST_RC=$TEST_RC OUT="$OUT" "$VENV/bin/python" - <<'EOF'
import datetime, json, os, subprocess, sys
sys.path.insert(0, "benchmarks")
from brian_throughput import run_config  # one configuration in a fresh process

out = os.environ["OUT"]
gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip()
with open("/proc/cpuinfo") as f:
    cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
rows, T, repeat = [], 4, 8
for name, copies in (("mlp", 256), ("cnn", 64)):
    for target in ("cpp_standalone", "cuda_standalone"):
        try:
            r = run_config(name, T, repeat, copies, 0, target)
        except Exception as e:  # a failed row is reported, the others still run
            r = dict(model=name, target=target, copies=copies, error=f"{type(e).__name__}: {e}")
        print(json.dumps(r), flush=True)
        rows.append(r)
info = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), gpu=gpu, cpu=cpu,
            command="bash benchmarks/gpu_check.sh", test_rc=int(os.environ["TEST_RC"]), rows=rows)
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(info, f, indent=2)
md = ["# GPU check: cuda_standalone vs cpp_standalone", "",
      f"Date: {info['date']} (UTC). GPU: {gpu}. CPU: {cpu}. Command: `bash benchmarks/gpu_check.sh`.",
      f"`pytest -m gpu tests/test_cuda.py` exit status: {info['test_rc']} (0 = spike counts equal to numpy).",
      "Rows: `benchmarks/brian_throughput.py` configurations (T = 4, test split x 8, one program for all",
      "images); images/s counts the simulation only, `compile` = code generation + compilation + setup.", "",
      "| model | target | copies | images | compile (s) | run (s) | images/s | accuracy | spikes/image |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    if "error" in r:
        md.append(f"| {r['model']} | {r['target']} | {r['copies']} | failed: {r['error'][:200]} | | | | | |")
    else:
        md.append(f"| {r['model']} | {r['target']} | {r['copies']} | {r['images']} | {r['compile_s']:.1f} | "
                  f"{r['run_s']:.2f} | {r['images_per_s']:.0f} | {r['accuracy']:.4f} | {r['spikes_per_image']:.0f} |")
with open(os.path.join(out, "gpu_check.md"), "w") as f:
    f.write("\n".join(md) + "\n")
print("\n".join(md))
EOF
echo "== done $(date -u +%FT%TZ); results in $OUT"
exit $TEST_RC
