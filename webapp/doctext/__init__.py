"""Documents as text: extraction with page and paragraph numbers (in a limited process for
PDF and DOCX), passages for retrieval, the prompts and results of the document tasks,
section differences, and the CSV and XLSX files people download.

Nothing here imports torch or streamlit: the engine's document lane runs the tasks, the
documents service builds them."""
