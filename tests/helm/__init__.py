"""Tests of the Helm chart in helm/serving: rendered with the real helm binary."""
