"""The only part of webapp/ that imports streamlit: session user, cached services, widgets."""
