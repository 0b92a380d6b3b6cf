"""Tests of the single-box deploy files in deploy/ (compose, Dockerfile, Prometheus, Grafana)."""
