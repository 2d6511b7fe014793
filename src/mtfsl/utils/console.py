"""What third-party libraries print on the console."""

from __future__ import annotations


def library_bars(on: bool) -> None:
    """datasets' tokenising and transformers' weight-loading bars: off unless asked for, so
    the console holds mtfsl's own bars, the log and the results."""
    import datasets
    import transformers

    if on:
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()
    else:
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
