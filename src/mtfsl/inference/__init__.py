"""Using a finished run: load it and predict (``run``), as a Hugging Face model (``hf``), as an
ONNX graph (``onnx``) and through ONNX Runtime (``ort``). The commands ``mtfsl-predict`` and
``mtfsl-export`` parse their arguments and call these; nothing here imports a command."""
