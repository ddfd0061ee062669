"""gm: an interactive lab for image generative models (library; never imports Streamlit)."""

__version__ = "0.1.0"
