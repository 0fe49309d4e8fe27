# The monitor, as a small non-root image. Build: docker build -t news-monitor .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY storage ./storage
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/monitor --create-home monitor
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/monitor.yaml /etc/monitor/monitor.yaml
USER monitor
WORKDIR /var/lib/monitor
ENV MONITOR_CONFIG=/etc/monitor/monitor.yaml
ENTRYPOINT ["monitor"]
CMD ["run"]
