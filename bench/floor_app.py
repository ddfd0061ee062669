"""The floor of the browser latency benchmark: a bare Streamlit page with one slider and one image.

Nothing but Streamlit's own round trip (key press, websocket, script run, image served, drawn), so
what gm's pages add on top of it shows beside it (bench/browser_latency.py starts both).
"""

import io

import numpy as np
import streamlit as st
from PIL import Image

value = st.slider("value", -3.0, 3.0, 0.0, 0.05)
shade = int((value + 3) / 6 * 255)
pixels = np.full((64, 64), shade, np.uint8)
buffer = io.BytesIO()
Image.fromarray(pixels).resize((256, 256), Image.NEAREST).save(buffer, format="PNG")
st.image(buffer.getvalue(), caption=f"{value:.2f}", output_format="PNG")
