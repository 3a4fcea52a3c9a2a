"""Model adapters: load a model from its files and run it. They know nothing of queues."""


def quiet_libraries() -> None:
    """Progress bars and warnings of the model libraries belong to the engine's job
    progress and Atelier's own messages, not to the server log (load failures still raise,
    and Atelier logs them itself)."""
    import diffusers.utils.logging
    import transformers.utils.logging

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
