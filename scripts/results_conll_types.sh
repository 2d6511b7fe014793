#!/usr/bin/env bash
# docs/results.md's multi-label table: task=conll_types (which entity types a CoNLL-2003
# sentence mentions) with the default encoder, one pass over the training data, seeds 1-3,
# one job after the other; then the mean and standard deviation of each test metric.
#   scripts/results_conll_types.sh OUT_DIR [DATA_ROOT]      (PYTHON=... picks the interpreter)
# Jobs are skipped when OUT_DIR/seedN/metrics.json exists, so a stopped run continues.
set -euo pipefail
out=${1:?usage: results_conll_types.sh OUT_DIR [DATA_ROOT]}
data=${2:-${MTFSL_DATA_ROOT:-../shared/data}}
py=${PYTHON:-python}
mkdir -p "$out"
for seed in 1 2 3; do
  dir="$out/seed$seed"
  [[ -f "$dir/metrics.json" ]] && continue
  echo "$(date -u +%FT%TZ) $dir"
  "$py" -m mtfsl.train task=conll_types "data.root=$data" hardware=cpu trainer.epochs=1 \
    "seed=$seed" "hydra.run.dir=$dir" > /dev/null 2> "$dir.stderr" || echo "FAILED $dir"
done
"$py" - "$out" <<'PY'
import json, statistics, sys
from pathlib import Path
runs = [json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("seed*/metrics.json"))]
for key in sorted(k for k in runs[0] if k.startswith(("test/", "dev/conll_types/threshold"))):
    values = [r[key] for r in runs]
    print(f"{key}: {statistics.mean(values):.2f} +- {statistics.stdev(values):.2f} {values}")
print("train seconds:", [round(r["time/train_seconds"]) for r in runs])
PY
