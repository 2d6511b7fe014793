#!/usr/bin/env bash
# The GLUE and few-shot SQuAD tables of docs/results.md: every job one after the other (one
# training at a time on a small machine), then scripts/results_table.py prints the tables.
#   scripts/results_glue_squad.sh OUT_DIR [DATA_ROOT]      (PYTHON=... picks the interpreter)
# Jobs are skipped when OUT_DIR/.../metrics.json exists, so a stopped run continues.
set -euo pipefail
out=${1:?usage: results_glue_squad.sh OUT_DIR [DATA_ROOT]}
data=${2:-${MTFSL_DATA_ROOT:-../shared/data}}
py=${PYTHON:-python}

job() {  # job NAME OVERRIDES...
  local dir="$out/$1"; shift
  [[ -f "$dir/metrics.json" ]] && return 0
  echo "$(date -u +%FT%TZ) $dir"
  "$py" -m mtfsl.train "data.root=$data" hardware=cpu "hydra.run.dir=$dir" "$@" \
    > /dev/null 2> "$dir.stderr" || echo "FAILED $dir (see $dir.stderr)"
}

quick() {  # one pass over the training data of each small GLUE task
  local seed=$1
  for task in rte mrpc stsb; do job "glue/$task/seed$seed" "task=$task" "seed=$seed" trainer.epochs=1; done
}

long() {  # CoLA 5 passes at lr 3e-5 (one at 1e-4 predicts only "acceptable": docs/results.md);
  # SST-2 (67k sentences) capped at 300 steps
  local seed=$1
  job "glue/cola/seed$seed" task=cola "seed=$seed" trainer.epochs=5 trainer.lr=3e-5
  job "glue/sst2/seed$seed" task=sst2 "seed=$seed" trainer.max_steps=300
}

squad() {  # K questions of the Notre Dame article (all 269 without K); the 810 Super Bowl 50
  # questions scored. Every size gets the few-shot budget (200 steps of batch 8, no dev set):
  # few_shot.k sets it; the run without K asks for it with trainer.max_steps / batch_size.
  local seed=$1
  job "squad/k16/seed$seed" task=squad "seed=$seed" few_shot.k=16 few_shot.dev=NONE
  job "squad/k64/seed$seed" task=squad "seed=$seed" few_shot.k=64 few_shot.dev=NONE
  job "squad/all/seed$seed" task=squad "seed=$seed" trainer.max_steps=200 trainer.batch_size=8
}

mix() {  # the GLUE mix: as many steps as the four single-task jobs together
  job "glue/mix/seed$1" task=glue "seed=$1" task_sampling=proportional trainer.max_steps=640
}

mix5() {  # the GLUE mix plus CoLA: 640 steps and CoLA's one pass (241 steps)
  job "glue/mix5/seed$1" "task=[rte,mrpc,stsb,sst2,cola]" "seed=$1" task_sampling=proportional trainer.max_steps=881
}

crosskind() {  # CoNLL NER + RTE + STS-B on one encoder: one pass over the three training sets
  job "glue/conll_glue/seed$1" task=conll_glue "seed=$1" task_sampling=proportional trainer.max_steps=690
}

mkdir -p "$out/glue" "$out/squad"
for d in rte mrpc stsb cola sst2 mix mix5 conll_glue; do mkdir -p "$out/glue/$d"; done
for d in k16 k64 all; do mkdir -p "$out/squad/$d"; done
# Most wanted first, so a stopped run leaves the most useful part of the tables: the quick
# tasks to three seeds, the cross-kind mix, then the long ones.
quick 1; quick 2; quick 3; crosskind 1; crosskind 2; crosskind 3
long 1; mix 1; long 2; long 3; mix 2; mix 3
squad 1; squad 2; squad 3
mix5 1; mix5 2; mix5 3
