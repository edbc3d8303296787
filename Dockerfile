FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY webhooks ./webhooks
COPY workers ./workers
COPY api ./api
RUN pip install --no-cache-dir . && useradd --system --uid 10001 webhooks
USER webhooks
EXPOSE 8000 5555
CMD ["gunicorn", "api:create_app()", "--bind", "0.0.0.0:8000", "--worker-class", "api.problem_worker.ProblemWorker", "--workers", "2", "--threads", "8"]
