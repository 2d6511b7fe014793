"""In-context learning (``few_shot.method=icl``): prompts with demonstrations, label scoring
by likelihood, no training."""
