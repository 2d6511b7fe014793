"""The steps of a run over its resolved tasks (``mtfsl.resolve.Task``), each asking the task's
kind: few-shot draws (``fewshot``), features (``prepare``), the model (``build``), and running
it over a split to score and write it (``evaluate``). Training and inference call these."""
