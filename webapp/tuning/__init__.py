"""Brand voice tuning as plain data: datasets of approved texts, presets, the training
conversation. Nothing here imports torch; the engine's training lane runs the work."""
