"""gm lab: the Streamlit entry (`streamlit run app.py`). Navigation and sidebar live in pages/_ui.py."""

from pages import _ui as ui

ui.run_app()
