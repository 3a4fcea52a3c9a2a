"""Installing models from a Hugging Face Hub (huggingface.co or a company mirror of it).

`plan` chooses what to fetch from a repo's file listing (safetensors, configs and
tokenizers only) and says why a repo is refused; `worker` is the separate process that
talks to the Hub; `process` starts and watches that process from the app; `server` is a
small Hub look-alike for tests and the install bench. Only `worker` imports
huggingface_hub with the network allowed: the app itself stays offline.
"""
