#!/usr/bin/env bash
# The decoder checks that need a CUDA GPU, as one short script for a lent machine (about 6
# minutes on an H100 after the install): QLoRA (4-bit base through bitsandbytes) and LoRA with
# gradient checkpointing in bf16 on SmolLM2, each a smoke run that must finish and score, then
# the LoRA throughput benchmark against HF Trainer + peft on the GPU.
#   scripts/gpu_check_llm.sh OUT_DIR [DATA_ROOT]     (after: make install TORCH=torch)
set -euo pipefail
out=${1:?usage: gpu_check_llm.sh OUT_DIR [DATA_ROOT]}
data=${2:-${MTFSL_DATA_ROOT:-../shared/data}}
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
"$py" -m pip install -q bitsandbytes
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'"
"$py" -m mtfsl.train task=banking77 model=smollm2 finetune=lora model.load_in_4bit=true \
  hardware=gpu debug=smoke "data.root=$data" "hydra.run.dir=$out/qlora" > "$out/qlora.log" 2>&1
"$py" -m mtfsl.train task=conll_mtl model=smollm2 finetune=lora hardware=gpu \
  hardware.gradient_checkpointing=true debug=smoke "data.root=$data" "hydra.run.dir=$out/ckpt" \
  > "$out/ckpt.log" 2>&1
"$py" -m mtfsl.export "$out/qlora" "$out/qlora_hf" > "$out/export.log" 2>&1 || echo "export failed"
grep -h "test:" "$out"/qlora/train.log "$out"/ckpt/train.log
"$py" scripts/bench_llm.py --device cuda --steps 100 --batch 32 --out "$out/bench.json" \
  "--data" "$data"
