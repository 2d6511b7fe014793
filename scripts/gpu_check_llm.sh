#!/usr/bin/env bash
# The decoder checks that need a CUDA GPU, as one short script for a lent machine (about 6
# minutes on an H100 after the install): QLoRA (4-bit base through bitsandbytes) and LoRA with
# gradient checkpointing in bf16 on SmolLM2, each a smoke run that must finish and score, then
# the LoRA throughput benchmark against HF Trainer + peft on the GPU; on a machine with two
# or more GPUs also full fine-tuning sharded (hardware=fsdp) against DDP, peak GPU memory per
# process from each run's metrics.json.
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
if (( $("$py" -c "import torch; print(torch.cuda.device_count())") >= 2 )); then
  for way in DDP FSDP; do
    "$py" -m torch.distributed.run --standalone --nproc_per_node 2 -m mtfsl.train task=conll \
      model=smollm2 finetune=full hardware=gpu "hardware.distributed=$way" trainer.max_steps=20 \
      trainer.batch_size=16 data.limit_eval=64 "data.root=$data" "hydra.run.dir=$out/$way" \
      > "$out/$way.log" 2>&1
    "$py" -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], \
m.get('memory/peak_cuda_mb'), m['test/conll/f1'])" "$out/$way/metrics.json" "$way"
  done
fi
