"""mtfsl: config-driven multi-task and few-shot fine-tuning of pretrained encoders and LLMs."""

__version__ = "0.1.0"
