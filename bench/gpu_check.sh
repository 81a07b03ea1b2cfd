#!/usr/bin/env bash
# Training throughput on a CUDA machine, new pipeline against the TimeSeriesDataSet one.
#
# Run from the repository root, with the project's missing wheels unpacked in /tmp/site:
#
#     PYTHONPATH=/tmp/site:$PWD OUT=/some/dir bash bench/gpu_check.sh
#
# Two bench/train.py jobs on the GPU at the default model size, 300 servers x 14 days:
#   arrays:  windows.WindowBatches (what fitting.fit trains on), 2 epochs x 51,200 windows;
#   dataset: TimeSeriesDataSet.__getitem__ + collate (the reference), 1 epoch x 6,400.
# nvidia-smi samples utilisation and memory every 250 ms during each job. Prints
# windows/s, the job's peak GPU memory (torch) and the sampled utilisation, and writes
# everything under $OUT (default /tmp/gpu_check): train-<name>.json / .log,
# smi-<name>.csv and gpu_check.json (the summary). Takes about 2-4 minutes; each job has
# its own time limit so the whole stays under 5.
set -u
OUT=${OUT:-/tmp/gpu_check}
PY=${PYTHON:-python3}
# DEVICE=cpu SMOKE=1: a small run of the same script on a machine without a GPU.
DEVICE=${DEVICE:-cuda}
SCALE=${SMOKE:+--servers 20 --days 3}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
    | tee -a "$OUT/gpu.txt"

run() {
    local name=$1 limit=$2
    shift 2
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -lms 250 \
        >"$OUT/smi-$name.csv" 2>/dev/null &
    local smi=$!
    local started=$SECONDS
    # shellcheck disable=SC2086
    timeout "$limit" "$PY" bench/train.py --device "$DEVICE" --threads 1 --sizes default --repeats 1 \
        --servers 300 --days 14 $SCALE --json "$OUT/train-$name.json" "$@" 2>&1 | tee "$OUT/train-$name.log"
    echo "# $name: exit ${PIPESTATUS[0]} after $((SECONDS - started)) s"
    kill "$smi" 2>/dev/null
    wait "$smi" 2>/dev/null
}

if [ -n "${SMOKE:-}" ]; then
    run arrays 300 --pipeline arrays --windows 256 --epochs 1
    run dataset 300 --pipeline dataset --windows 256 --epochs 1
else
    run arrays 170 --pipeline arrays --windows 51200 --epochs 2
    run dataset 110 --pipeline dataset --windows 6400 --epochs 1
fi

"$PY" - "$OUT" <<'EOF'
import csv, json, pathlib, sys

out = pathlib.Path(sys.argv[1])
summary = {}
for name in ("arrays", "dataset"):
    entry = {}
    path = out / f"train-{name}.json"
    if path.exists():
        job = json.loads(path.read_text())["runs"][0]
        run = job["runs"][0]
        entry.update(
            samples_per_s=run["samples_per_s"],
            batch_size=run.get("batch_size"),
            batches=run["batches"],
            gpu_peak_mib=run.get("gpu_peak_mib"),
            gpu=run.get("gpu"),
            notes=run.get("notes"),
            loader_windows_per_s=job.get("loader_windows_per_s"),
            dataset_build_s=job["dataset_build_s"],
            peak_rss_mib=job["peak_rss_mib"],
            validation=job["validation"],
        )
    util, mem = [], []
    smi = out / f"smi-{name}.csv"
    for row in csv.reader(smi.open() if smi.exists() else []):
        try:
            util.append(float(row[0]))
            mem.append(float(row[1]))
        except (ValueError, IndexError):
            continue
    busy = [u for u in util if u > 0]
    entry["nvidia_smi"] = {
        "samples": len(util),
        "util_mean_busy_pct": sum(busy) / len(busy) if busy else 0.0,
        "util_max_pct": max(util, default=0.0),
        "busy_samples": len(busy),
        "memory_used_max_mib": max(mem, default=0.0),
    }
    summary[name] = entry
    print(f"{name}: {json.dumps(entry)}")
if "samples_per_s" in summary.get("arrays", {}) and "samples_per_s" in summary.get("dataset", {}):
    ratio = summary["arrays"]["samples_per_s"] / summary["dataset"]["samples_per_s"]
    summary["ratio_arrays_over_dataset"] = ratio
    print(f"arrays / dataset windows/s: x{ratio:.1f}")
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
EOF
