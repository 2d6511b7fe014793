"""Values that the data and the model layers agree on without importing each other."""

# The label of a position that no loss or metric counts (a later sub-token, a special token,
# padding, a context word): torch's cross-entropy default ``ignore_index``.
IGNORE_INDEX = -100
