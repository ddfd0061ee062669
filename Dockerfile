# The gm lab as a Hugging Face Docker Space (or any container host): CPU-only, non-root, port 8501.
# Build and run locally:  docker build -t gm-lab . && docker run --rm -p 8501:8501 gm-lab
FROM python:3.11-slim

# Spaces run containers as uid 1000; create that user and work in its home.
# GM_DEMO=1: each visitor owns its jobs, caps on jobs and steps, no Hub push (README "Hosted demo");
# HF_HUB_DISABLE_IMPLICIT_TOKEN=1: no Hub call in the container sends a saved login by itself.
RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GM_DEMO=1 \
    GM_DEMO_MAX_JOBS=4 \
    GM_DEMO_MAX_RUNNING=1 \
    GM_DEMO_JOBS_PER_SESSION=1 \
    GM_DEMO_MAX_STEPS=3000 \
    GM_DEMO_IDLE_SECONDS=300 \
    HF_HUB_DISABLE_IMPLICIT_TOKEN=1 \
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
