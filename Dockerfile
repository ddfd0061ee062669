# The gm lab as a Hugging Face Docker Space (or any container host): CPU-only, non-root, port 8501.
# Build and run locally:  docker build -t gm-lab . && docker run --rm -p 8501:8501 gm-lab
FROM python:3.11-slim

# Spaces run containers as uid 1000; create that user and work in its home.
RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GM_DEMO=1 \
    GM_RUNS_DIR=/home/user/runs \
    GM_CACHE_DIR=/home/user/.cache/gm \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
WORKDIR /home/user/app

# Dependencies first (cached layer); the CPU wheel of torch keeps the image small.
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

COPY --chown=user . .

EXPOSE 8501
CMD ["streamlit", "run", "app.py", "--server.port", "8501", "--server.address", "0.0.0.0"]
