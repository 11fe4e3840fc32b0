"""Operations: logging setup, Prometheus metrics and the container health probe."""
