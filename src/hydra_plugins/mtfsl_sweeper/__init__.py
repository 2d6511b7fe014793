"""``hydra/sweeper=tune``: hydra-optuna-sweeper's Optuna search, resumable from its SQLite study.

The plugin loads an existing study (``load_if_exists``) but numbers its jobs from 0 again, so
a second invocation would write its trials into the first one's job folders. Here the job
numbers continue after the study's trials, and trials an interrupted sweep left running are
marked failed (the sampler then ignores them) before the search goes on.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

try:  # Hydra imports every hydra_plugins module at start; the sweep extra may be missing
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:  # pragma: no cover - without pip install 'mtfsl[sweep]'
    OptunaSweeper = None


if OptunaSweeper is not None:

    class ResumableOptunaSweeper(OptunaSweeper):
        def sweep(self, arguments: list[str]) -> Any:
            impl = self.sweeper
            if impl.storage:
                impl.job_idx = _continue_study(impl.study_name, impl.storage)
            return super().sweep(arguments)


def _continue_study(name: str, storage: str) -> int:
    """The number of trials the stored study holds (0 if none), its running trials failed."""
    import optuna

    summaries = optuna.get_all_study_summaries(storage=storage)
    if not any(s.study_name == name for s in summaries):
        return 0
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    stale = [t.number for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    for number in stale:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    log.info(
        "Optuna study '%s' (%s): %d trials done, %d interrupted ones marked failed; new jobs "
        "are numbered from %d",
        name,
        storage,
        done,
        len(stale),
        len(trials),
    )
    return len(trials)
