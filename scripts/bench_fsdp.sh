#!/usr/bin/env bash
# Peak memory per process of full fine-tuning SmolLM2 in two processes on the CPU (gloo):
# replicated (hardware.distributed=DDP: every process holds all weights, gradients and Adam
# states) against sharded (FSDP: each holds half of them, a block's weights gathered while it
# computes). Same data, seed and steps; prints each run's peak RSS of the main process, its
# tokens per second and the gap between the two runs' trained weights.
#   scripts/bench_fsdp.sh OUT_DIR [DATA_ROOT]      (PYTHON=... picks the interpreter)
set -euo pipefail
out=${1:?usage: bench_fsdp.sh OUT_DIR [DATA_ROOT]}
data=${2:-${MTFSL_DATA_ROOT:-../shared/data}}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
for way in DDP FSDP; do
  [[ -f "$out/$way/metrics.json" ]] && continue
  OMP_NUM_THREADS=1 "$py" -m torch.distributed.run --standalone --nproc_per_node 2 \
    -m mtfsl.train task=conll model=smollm2 finetune=full hardware=cpu \
    "hardware.distributed=$way" model.dropout=0 model.encoder_dropout=0 trainer.max_steps=6 \
    trainer.batch_size=8 trainer.eval_every_steps=6 data.limit_eval=16 "data.root=$data" \
    "hydra.run.dir=$out/$way" > "$out/$way.log" 2>&1
done
"$py" - "$out" <<'PY'
import json, sys
from pathlib import Path
import numpy as np
from safetensors.numpy import load_file
out = Path(sys.argv[1])
for way in ("DDP", "FSDP"):
    m = json.loads((out / way / "metrics.json").read_text())
    print(f"{way}: peak RSS {m['memory/peak_rss_mb']:.0f} MiB (main process), "
          f"{m['time/train_tokens_per_second']:.0f} tokens/s, train loss steps in train.log")
a, b = (load_file(str(out / w / "checkpoints/best/model.safetensors")) for w in ("DDP", "FSDP"))
print("largest weight difference DDP vs FSDP:", max(float(np.abs(a[k] - b[k]).max()) for k in a))
PY
