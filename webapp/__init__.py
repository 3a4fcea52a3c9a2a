"""Atelier: a private generative-AI studio for company teams."""

__version__ = "0.1.0"
