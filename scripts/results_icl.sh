#!/usr/bin/env bash
# docs/results.md's in-context learning table: SmolLM2-135M-Instruct (model=smollm2) with
# few_shot.method=icl on SST-2, RTE, Banking77 and CoNLL-2003, K = 0, 1, 5, 10 demonstrations
# per class (CoNLL: the Huang et al. 5-shot splits 0-2, K=0), 3 draws each (seeds 1-3),
# demonstrations in one seeded order (FIXED) or nearest-last by MiniLM similarity (SIMILAR),
# contextual calibration on: every run also reports the uncalibrated scores of the same label
# likelihoods (uncalibrated_accuracy). One job after the other (2 CPU cores), FIXED first; a
# job whose metrics.json exists is skipped.
#   scripts/results_icl.sh OUT_DIR [DATA_ROOT]      (PYTHON=... picks the interpreter)
# Then: python scripts/results_icl_table.py OUT_DIR
# On 2 cores, two queues of one thread each keep both busy:
#   OMP_NUM_THREADS=1 SECTIONS="icl_fixed icl_similar" scripts/results_icl.sh OUT &
#   OMP_NUM_THREADS=1 SECTIONS=finetune_both scripts/results_icl.sh OUT &
# Evaluation sets (to fit 2 CPU cores): SST-2 and Banking77 300 test examples drawn with seed
# 1 (data.limit_seed), RTE its whole dev split (277, GLUE's evaluation split), CoNLL 200 test
# sentences drawn the same way.
set -euo pipefail
out=${1:?usage: results_icl.sh OUT_DIR [DATA_ROOT]}
data=${2:-${MTFSL_DATA_ROOT:-../shared/data}}
py=${PYTHON:-python}
mkdir -p "$out"
ICL=(model=smollm2 few_shot.method=icl few_shot.dev=NONE hardware=cpu)
CAL=(few_shot.icl.calibrate=true)
LIMIT="data.limit_eval=300 data.limit_seed=1"
declare -A TASK=([sst2]="task=sst2 $LIMIT" [rte]="task=rte" [b77]="task=banking77 $LIMIT")
CONLL0=(task=conll data.limit_eval=200 data.limit_seed=1)
CONLL5=(experiment=fewshot_conll_huang data.limit_eval=200 data.limit_seed=1)
job() {  # NAME OVERRIDES...
  local dir="$out/$1"
  shift
  [[ -f "$dir/metrics.json" ]] && return 0
  mkdir -p "$dir"
  echo "$(date -u +%FT%TZ) start $dir"
  "$py" -m mtfsl.train "data.root=$data" "$@" "hydra.run.dir=$dir" \
    > /dev/null 2> "$dir.stderr" || echo "FAILED $dir"
  echo "$(date -u +%FT%TZ) end $dir"
}
grid() {  # SELECTION TASK... : every K and draw
  local sel=$1
  shift
  for t in "$@"; do
    # shellcheck disable=SC2206
    local task=(${TASK[$t]})
    [[ $sel == FIXED ]] && job "$t/k0" "${ICL[@]}" "${CAL[@]}" "${task[@]}" few_shot.k=0
    for k in 1 5 10; do
      for seed in 1 2 3; do
        job "$t/${sel,,}_k${k}_seed$seed" "${ICL[@]}" "${CAL[@]}" "${task[@]}" \
          few_shot.icl.selection=$sel "few_shot.k=$k" "seed=$seed"
      done
    done
  done
}
conll() {  # SELECTION
  [[ $1 == FIXED ]] && job conll/k0 "${ICL[@]}" "${CONLL0[@]}" few_shot.k=0
  for split in 0 1 2; do
    job "conll/${1,,}_k5_split$split" "${ICL[@]}" "${CONLL5[@]}" \
      few_shot.icl.selection="$1" "few_shot.split=$split"
  done
}
# Fine-tuning on the same K-shot draws (seed = the draw), the same evaluation sets, 100 steps
# of 8, no dev set (the last model): SmolLM2 prompt fine-tuning with LoRA (LM-BFF-style, the
# in-context prompt's wording, task=sst2_prompt / rte_prompt) and MiniLM with a
# classification head. (Banking77 and CoNLL fine-tuning: scripts/results_llm.sh's runs.)
# RTE's premise, hypothesis and template take more than model=smollm2's 128 tokens
declare -A PROMPT_TASK=([sst2]="task=sst2_prompt $LIMIT" [rte]="task=rte_prompt model.max_length=512")
FT=(few_shot.dev=NONE hardware=cpu trainer.max_steps=100 trainer.batch_size=8)
finetune() {  # TASK...
  for t in "$@"; do
    # shellcheck disable=SC2206
    local task=(${TASK[$t]}) prompt=(${PROMPT_TASK[$t]})
    for k in 1 5 10; do
      for seed in 1 2 3; do
        job "$t/lora_prompt_k${k}_seed$seed" model=smollm2 finetune=lora trainer.lr=1e-3 \
          "${FT[@]}" "${prompt[@]}" "few_shot.k=$k" "seed=$seed"
        job "$t/minilm_k${k}_seed$seed" "${FT[@]}" "${task[@]}" "few_shot.k=$k" "seed=$seed"
      done
    done
  done
}
# Sections (SECTIONS="..." runs some, e.g. two queues of one thread each on 2 cores):
icl_fixed() { grid FIXED sst2 rte; conll FIXED; grid FIXED b77; }
icl_similar() { grid SIMILAR sst2; conll SIMILAR; grid SIMILAR rte b77; }
for section in ${SECTIONS:-icl_fixed finetune_both icl_similar}; do
  case $section in
    finetune_both) finetune sst2 rte ;;
    *) "$section" ;;
  esac
done
